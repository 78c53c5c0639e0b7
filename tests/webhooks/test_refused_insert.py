"""A learning record the database refuses for a reason other than its unique source (a CHECK constraint, a
trigger) is an error of that delivery, never a "duplicate": the delivery is not marked processed, it is parked
with the database's reason, and no duplicate is counted (before the fix, store_record took every IntegrityError
for a concurrent twin and the record was silently lost)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from webhook_helpers import SECRET, payload, seed, settings_for, signed

from creditbridge.cli.main import cli
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all


def refuse_course_records(store: Store) -> None:
    """The database refuses every course record from now on, with an integrity error that is not the source's."""
    with store.session() as s:
        if store.is_postgres:
            s.execute(text("ALTER TABLE learning_record ADD CONSTRAINT no_course_records "
                           "CHECK (kind <> 'course') NOT VALID"))
        else:
            s.execute(text("CREATE TRIGGER no_course_records BEFORE INSERT ON learning_record "
                           "WHEN NEW.kind = 'course' BEGIN SELECT RAISE(ABORT, 'no course records'); END"))


@pytest.fixture
def refusing(db_url: str, tmp_path) -> Iterator[tuple[Store, str]]:
    store = open_store(db_url)
    seed(store)
    refuse_course_records(store)
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n', encoding="utf-8")
    try:
        yield store, str(config)
    finally:
        store.dispose()


@pytest.mark.parametrize("mode", ["request", "replay"])
def test_refused_insert_is_no_duplicate(refusing: tuple[Store, str], db_url: str, mode: str) -> None:
    store, config = refusing
    app = create_app({"SETTINGS": settings_for(db_url)})
    # "request": processed before the answer; "replay": stored only, processed by `intake replay` as an operator
    # runs it (the chunk fails, then the delivery is redone alone through store_record).
    app.config["WEBHOOKS_INLINE_MODE"] = "request"
    if mode == "replay":
        app.config["WEBHOOKS_PROCESS_INLINE"] = False
    try:
        body, headers = signed(payload())
        r = app.test_client().post("/webhooks/moodle", data=body, headers=headers)
        assert r.status_code == 202, r.json
    finally:
        close_app(app)
    runner = CliRunner()
    if mode == "replay":
        replay = runner.invoke(cli, ["--config", config, "intake", "replay", "--json"])
        assert "Traceback" not in replay.output
        assert json.loads(replay.stdout)["processed"] == 0
    with store.session() as s:
        assert s.scalars(select(LearningRecordRow)).all() == []
        assert s.scalar(select(WebhookDelivery.state)) != "processed"
    assert read_all(store).get("duplicate", 0) == 0
    parked = runner.invoke(cli, ["--config", config, "intake", "parked", "--json"])
    assert parked.exit_code == 0, parked.output
    [row] = json.loads(parked.stdout)
    assert "IntegrityError" in row["reason"] or "CheckViolation" in row["reason"], row
