"""#14 item 2: two concurrent `push` runs, the second failing on the outbox's unique key, print no ID number.

The race made deterministic on the real PostgreSQL: a rival transaction (the other push's build) has inserted
version 1 of every teacher's submission and not committed yet; `push` builds the same rows, its INSERT waits on
the unique index, the rival commits, and push fails with a unique violation whose DETAIL line names the key,
ID number included ("Key (programme, teacher, role, year, version)=(sd-2022, 3701..., teacher, 2022, 1)")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pg_waits import run_past_a_rival
from registry_helpers import add_teachers, id_number, put_results
from sqlalchemy import insert

from creditbridge.outbox.payload import idempotency_key
from creditbridge.store import open_store
from creditbridge.store.models.registry import RegistrySubmission

pytestmark = pytest.mark.postgres
TEACHERS = list(range(1, 8))



def test_concurrent_push_failure_prints_no_id_number(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    add_teachers(store, TEACHERS)
    put_results(store, [{"teacher": id_number(n)} for n in TEACHERS])
    config = tmp_path / "creditbridge.toml"
    # The registry is never reached: push fails while building the outbox.
    config.write_text(f'[database]\nurl = "{pg_url}"\n[registry]\nurl = "http://127.0.0.1:9"\nsecret = "s"\n',
                      encoding="utf-8")
    rival = store.engine.connect()
    trans = rival.begin()
    t = RegistrySubmission.__table__
    rival.execute(insert(t), [
        {"programme": "sd-2022", "teacher": id_number(n), "role": "teacher", "year": 2022, "version": 1,
         "action": "submit", "idempotency_key": idempotency_key("sd-2022", "teacher", id_number(n), 2022, 1),
         "result_hash": "x", "payload": {}, "state": "pending", "attempts": 0} for n in TEACHERS])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    try:
        code, out, err = run_past_a_rival(pg_url, ["--config", str(config), "push"], env, trans, "push")
    finally:
        rival.close()
        store.dispose()
    assert code != 0, (out, err)
    assert "already exists" in err  # the unique violation, with its key ...
    for n in TEACHERS:  # ... masked
        assert id_number(n) not in out + err, err
    assert "SQL parameters hidden" in err
