"""#14 item 2 (receiver and `intake replay`) and item 4 (`intake import`): a failure while processing a delivery
of a known teacher prints no full ID number, on SQLite and PostgreSQL.

The failure is a real one: the database refuses the learning-record INSERT (a trigger), whose parameters hold
the teacher's ID number. On PostgreSQL the trigger refuses the way a unique index does, with the key in the
error's DETAIL line ("Key (teacher)=(...) already exists"), which no SQLAlchemy setting hides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from webhook_helpers import ID_NUMBER, SECRET, payload, seed, signed, start_receiver

from creditbridge.records import mask_id_number
from creditbridge.store import Store, open_store
from creditbridge.webhooks.app import close_app, create_app

SQLITE_TRIGGER = """CREATE TRIGGER refuse_record BEFORE INSERT ON learning_record
BEGIN SELECT RAISE(ABORT, 'learning record refused'); END"""
PG_FUNCTION = """CREATE FUNCTION refuse_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'unique_violation',
    MESSAGE = 'duplicate key value violates unique constraint "learning_record_teacher_key"',
    DETAIL = format('Key (teacher)=(%s) already exists.', NEW.teacher);
END $$"""
PG_TRIGGER = ("CREATE TRIGGER refuse_record BEFORE INSERT ON learning_record "
              "FOR EACH ROW EXECUTE FUNCTION refuse_record()")


def refuse_learning_records(store: Store) -> None:
    with store.engine.begin() as c:
        if store.is_postgres:
            c.execute(text(PG_FUNCTION))
            c.execute(text(PG_TRIGGER))
        else:
            c.execute(text(SQLITE_TRIGGER))


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}


def write_config(tmp_path: Path, db_url: str, webhooks: str = "") -> Path:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n{webhooks}', encoding="utf-8")
    return path


def assert_no_full_id_number(output: str) -> None:
    assert ID_NUMBER not in output and ID_NUMBER.lower() not in output, output


def test_receiver_processing_failure_logs_no_id_number(tmp_path: Path, db_url: str) -> None:
    """Through a real gunicorn (`creditbridge serve`), processing before the answer (inline_mode "request")."""
    store = open_store(db_url)
    seed(store)
    refuse_learning_records(store)
    receiver = start_receiver(tmp_path, db_url, 'inline_mode = "request"\n', workers=1, worker_class="sync")
    try:
        body, headers = signed(payload())
        r = requests.post(receiver.url + "/webhooks/moodle", data=body, headers=headers, timeout=30)
        assert r.status_code == 202  # stored; the failure is after the commit
    finally:
        receiver.stop()
    output = receiver.log.read_text(encoding="utf-8", errors="replace")
    # The refusal is this delivery's failure (never taken for a duplicate: store_record re-raises it), logged on
    # one line with the driver's first line, without the number.
    assert "delivery 1 failed: processing failed: IntegrityError: " in output, output
    assert_no_full_id_number(output)
    store.dispose()


def test_intake_replay_of_a_failing_delivery_prints_no_id_number(tmp_path: Path, db_url: str) -> None:
    store = open_store(db_url)
    seed(store)
    config = write_config(tmp_path, db_url, "process_inline = false\n")
    app = create_app({"CONFIG_PATH": str(config)})
    body, headers = signed(payload())
    assert app.test_client().post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    close_app(app)
    refuse_learning_records(store)
    argv = [sys.executable, "-m", "creditbridge.cli.main", "--config", str(config)]
    replay = subprocess.run([*argv, "intake", "replay", "--json"], env=cli_env(), capture_output=True, text=True,
                            timeout=120)
    assert replay.returncode == 0, replay.stderr
    # Refused by the database: parked with the reason, not marked processed as if it were a duplicate.
    out = json.loads(replay.stdout)
    assert (out["processed"], out["parked"]) == (0, 1), out
    assert "chunk of 1 deliveries failed" in replay.stderr and "Traceback" not in replay.stderr
    assert_no_full_id_number(replay.stdout + replay.stderr)
    # -vv: debug logging of every statement and its parameters is on; still no number.
    verbose = subprocess.run([*argv, "-vv", "intake", "replay"], env=cli_env(), capture_output=True, text=True,
                             timeout=120)
    assert verbose.returncode == 0, verbose.stderr
    assert_no_full_id_number(verbose.stdout + verbose.stderr)
    parked = subprocess.run([*argv, "intake", "parked"], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert parked.returncode == 0, parked.stderr
    assert_no_full_id_number(parked.stdout + parked.stderr)
    store.dispose()


def test_import_errors_mask_only_the_id_number(tmp_path: Path, sqlite_url: str) -> None:
    """Item 4: the reason stays readable; only an ID number inside it is masked."""
    config = write_config(tmp_path, sqlite_url)
    good = {"teacher": ID_NUMBER, "programme": "sd-2022", "course": "C1", "activity": None, "kind": "course",
            "hours": 3, "minutes": None, "score": None, "passed": True, "occurred_at": "2022-09-01T10:00:00+08:00",
            "source": "offline:1"}
    lines = [dict(good, teacher="110105194912310021", source="offline:2"),  # wrong check digit
             dict(good, teacher="12345", source="offline:3"),  # not an ID number at all
             dict(good, kind="x", source=f"offline:{ID_NUMBER}"),  # a bad field on a row naming the teacher
             dict(good, hours="many", source="offline:5")]
    f = tmp_path / "records.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "intake",
                           "import", str(f)], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert_no_full_id_number(proc.stdout + proc.stderr)
    errors = [line.strip() for line in proc.stderr.splitlines()]
    assert "line 1: teacher: Value error, ID number 1101************21 has a wrong check digit (ISO 7064 MOD 11-2)" \
        in errors
    assert "line 2: teacher: Value error, ID number must be 17 digits and then a digit or X; got 5 characters" in errors
    assert any(e.startswith("line 3: kind: Input should be") for e in errors), errors
    assert any(e.startswith("line 4: hours: ") and "number" in e for e in errors), errors


@pytest.mark.parametrize("value", [ID_NUMBER, ID_NUMBER.lower()])
def test_import_reason_with_a_number_in_it_is_masked_in_place(value: str) -> None:
    from pydantic import BaseModel, ValidationError, field_validator

    from creditbridge.webhooks.importer import _errors

    class Probe(BaseModel):
        teacher: str

        @field_validator("teacher")
        @classmethod
        def _refuse(cls, v: str) -> str:
            raise ValueError(f"teacher {v} is not on the roster")

    with pytest.raises(ValidationError) as e:
        Probe(teacher=value)
    [error] = _errors(7, e.value)
    assert error == {"line": 7, "field": "teacher",
                     "reason": f"Value error, teacher {mask_id_number(value)} is not on the roster"}
