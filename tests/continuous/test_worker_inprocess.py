"""The worker's rounds in process (the same code `creditbridge worker` runs): evaluation batches, outbox,
micro-batch push, a registry outage, a database error, a rule change."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from continuous_helpers import AT, ELECTIVES, config_text, registry_rows, seed, wait_for
from registry_helpers import id_number, running_sim
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from creditbridge.programmes import loading
from creditbridge.runner.worker import Worker
from creditbridge.settings import load_settings
from creditbridge.store import Store
from creditbridge.store.models.core import LearningRecordRow, Teacher
from creditbridge.store.models.credits import CreditEvaluationRun, CreditMark
from creditbridge.store.models.registry import RegistrySubmission


def _settings(tmp_path: Path, db_url: str, registry_url: str, extra: str = "") -> Any:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(db_url, registry_url, extra=extra), encoding="utf-8")
    return load_settings(cfg, env={})


def _add(store: Store, teacher: str, course: str, source: str) -> None:
    with store.session() as s:
        s.add(LearningRecordRow(programme="sd-2022", teacher=teacher, course=course, kind="course", passed=True,
                                occurred_at=AT, source=source))


def _drain(worker: Worker, rounds: int = 50) -> None:
    for _ in range(rounds):
        if not worker.round():
            return
    raise AssertionError("the worker still had work after 50 rounds")


def _open(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(RegistrySubmission)
                        .where(RegistrySubmission.state.in_(("pending", "sent")))) or 0


def test_rounds_evaluate_marked_teachers_and_push_their_changes(store: Store, db_url: str, tmp_path: Path) -> None:
    people = seed(store, 5)
    with running_sim(tmp_path) as sim:
        worker = Worker(_settings(tmp_path, db_url, sim.url), store)
        _drain(worker)  # first: the whole programme (no complete evaluation yet), then its push
        assert worker.totals["programme_runs"] == 1
        assert len(registry_rows(sim.db_path)) == 5 and _open(store) == 0
        # one completion: only its teacher is evaluated, a version 2 is pushed superseding version 1
        _add(store, people[2], ELECTIVES[0], "t:1")
        before = dict(worker.totals)
        _drain(worker)
        assert worker.totals["evaluated"] - before.get("evaluated", 0) == 1
        rows = registry_rows(sim.db_path)
        mine = sorted((r["version"], r["state"]) for r in rows if r["teacher"] == people[2])
        assert mine == [(1, "superseded"), (2, "active")]
        hours = {r["version"]: json.loads(r["payload"])["hours"] for r in rows if r["teacher"] == people[2]}
        assert float(hours[2]) > float(hours[1])
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(CreditMark)) == 0
            modes = set(s.scalars(select(CreditEvaluationRun.mode)))
        assert modes == {"all", "continuous"}
        assert all(r["deliveries"] == 1 for r in rows), "nothing sent twice"


def test_registry_outage_backs_off_and_pushes_after(store: Store, db_url: str, tmp_path: Path) -> None:
    people = seed(store, 3)
    with running_sim(tmp_path) as sim:
        worker = Worker(_settings(tmp_path, db_url, sim.url), store)
        _drain(worker)
        sim.app.config["REGISTRY_SIM_FAIL_RATE"] = 1.0
        sim.app.config["REGISTRY_SIM_FAIL_MODES"] = ["503"]
        _add(store, people[0], ELECTIVES[1], "t:2")
        worker.round()
        assert _open(store) == 1, "evaluated and built while the registry is down"
        assert worker._push_after > 0
        calls = sim.state.calls
        worker.round()  # within the backoff: no new attempt
        assert sim.state.calls == calls
        sim.app.config["REGISTRY_SIM_FAIL_RATE"] = 0.0
        wait_for("pushed after the outage", lambda: (worker.round(), _open(store) == 0)[1], 10)
        assert [r["version"] for r in registry_rows(sim.db_path) if r["teacher"] == people[0]] == [1, 2]


def test_run_reconnects_after_a_database_error_and_stops_after_the_batch(store: Store, db_url: str,
                                                                           tmp_path: Path) -> None:
    people = seed(store, 3)
    with running_sim(tmp_path) as sim:
        worker = Worker(_settings(tmp_path, db_url, sim.url), store)
        _drain(worker)
        real = worker.evaluate_batch
        failures = {"n": 0}

        def flaky() -> int:
            if failures["n"] < 2:  # as a restarted database answers: the connection is gone
                failures["n"] += 1
                raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
            return real()

        worker.evaluate_batch = flaky  # type: ignore[method-assign]
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            _add(store, people[1], ELECTIVES[2], "t:3")
            wait_for("pushed after the database came back",
                     lambda: [r for r in registry_rows(sim.db_path) if r["teacher"] == people[1] and r["version"] == 2],
                     20)
        finally:
            worker.stop()
            thread.join(20)
        assert not thread.is_alive()
        assert failures["n"] == 2


def test_a_rule_change_re_evaluates_its_programme_only(store: Store, db_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store, 3)
    with store.session() as s:  # a second programme, which the sd-2022 rule change must leave alone
        s.add(Teacher(programme="hf-2021-it2", id_number=id_number(500), name="教师", school_code="340104001",
                      school_name="学校", county="蜀山区", city="合肥市", stage="初中", subject="数学"))
    with running_sim(tmp_path) as sim:
        worker = Worker(_settings(tmp_path, db_url, sim.url), store)
        _drain(worker)
        original = loading.builtin_rule_path
        new = tmp_path / "sd-2022.yaml"
        new.write_text(original("sd-2022").read_text(encoding="utf-8").replace("version:", "# changed\nversion:", 1),
                       encoding="utf-8")
        monkeypatch.setattr(loading, "builtin_rule_path", lambda code: new if code == "sd-2022" else original(code))
        worker._next_check = 0
        _drain(worker)
        with store.session() as s:
            runs = s.execute(select(CreditEvaluationRun.programme, CreditEvaluationRun.mode)
                             .order_by(CreditEvaluationRun.id)).all()
        full = [r[0] for r in runs if r[1] == "all"]
        assert sorted(full[:2]) == ["hf-2021-it2", "sd-2022"], "first: each programme once"
        assert full[2:] == ["sd-2022"], "the changed rule file: its programme only"
