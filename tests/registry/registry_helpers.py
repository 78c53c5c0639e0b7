"""Shared test helpers for the registry and outbox tests: valid ID numbers, records, a live simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from creditbridge.records.id_number import check_digit
from creditbridge.registry_sim.app import create_app
from creditbridge.registry_sim.server import ServerHandle, serve_in_thread
from creditbridge.settings.model import RegistrySettings

SECRET = "test-registry-secret"
KEY_ID = "creditbridge"


def id_number(n: int) -> str:
    first17 = f"3701021980{(n % 12) + 1:02d}{(n % 28) + 1:02d}{n % 1000:03d}"
    return first17 + check_digit(first17)


def record(n: int, **over: Any) -> dict[str, Any]:
    r = {"id_number": id_number(n), "name": f"教师{n}", "school_code": "S001", "school_name": "历下实验学校",
         "programme_code": "sd-2022", "programme_name": "山东 2022", "year": 2022, "version": 1, "role": "teacher",
         "hours": 50.0, "credits": 5.0, "result": "passed", "provider": "creditbridge",
         "start_date": "2022-01-01", "end_date": "2022-12-31"}
    r.update(over)
    return r


@dataclass
class Sim:
    handle: ServerHandle
    app: Any
    db_path: Path

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def state(self) -> Any:
        return self.app.extensions["registry_sim"]

    def rows(self) -> list[dict[str, Any]]:
        with self.state.db.lock:
            return self.state.db.records(limit=100000)

    def settings(self, **over: Any) -> RegistrySettings:
        values: dict[str, Any] = {"target": "rest", "url": self.url, "key_id": KEY_ID, "secret": SecretStr(SECRET),
                                  "timeout_seconds": 5.0, "backoff_seconds": 0.01}
        values.update(over)
        return RegistrySettings(**values)


@contextmanager
def running_sim(tmp_path: Path, **config: Any) -> Iterator[Sim]:
    db = tmp_path / "registry-sim.db"
    app = create_app({"REGISTRY_SIM_DB": str(db), "REGISTRY_SIM_KEYS": {KEY_ID: SECRET},
                      "REGISTRY_SIM_RETRY_AFTER": 0, **config})
    handle = serve_in_thread(app)
    try:
        yield Sim(handle, app, db)
    finally:
        handle.stop()
        app.extensions["registry_sim"].db.close()


def credit_result_table(store: Any) -> Any:
    """The credit_result table (mappings flow), as its model declares it."""
    from creditbridge.store.models.credits import CreditResult

    return CreditResult.__table__


def put_results(store: Any, rows: list[dict[str, Any]]) -> None:
    """Insert or replace credit results, as the evaluator does (unique programme, teacher, role)."""
    import hashlib
    from datetime import UTC, datetime

    from sqlalchemy import and_, delete, insert

    t = credit_result_table(store)
    now = datetime(2022, 12, 1, tzinfo=UTC)
    with store.session() as s:
        for r in rows:
            full = {"programme": "sd-2022", "role": "teacher", "year": 2022, "hours": 50, "credits": 5, "points": None,
                    "passed": True, "components": {}, "reasons": [], "reasons_zh": [], "rule_version": "1",
                    "rule_hash": "r" * 64, "evaluated_at": now, **r}
            full["result_hash"] = hashlib.sha256(
                f"{full['hours']}|{full['credits']}|{full['passed']}".encode()).hexdigest()
            s.execute(delete(t).where(and_(t.c.programme == full["programme"], t.c.teacher == full["teacher"],
                                           t.c.role == full["role"])))
            s.execute(insert(t).values(**{k: v for k, v in full.items() if k in t.c}))


def withdraw_result(store: Any, teacher: str, programme: str = "sd-2022") -> None:
    from sqlalchemy import and_, delete

    t = credit_result_table(store)
    with store.session() as s:
        s.execute(delete(t).where(and_(t.c.programme == programme, t.c.teacher == teacher)))


def add_teachers(store: Any, ns: list[int], programme: str = "sd-2022") -> None:
    from creditbridge.store.models.core import Teacher

    with store.session() as s:
        for n in ns:
            s.add(Teacher(programme=programme, id_number=id_number(n), name=f"教师{n}", school_code="S001",
                          school_name="历下实验学校", county="历下区", city="济南市", stage="primary", subject="math"))
