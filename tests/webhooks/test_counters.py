"""Refused requests are counted in each worker's memory and flushed to the store on a timer and at the worker's
stop: junk costs no database write per request, and `intake status` still gets every count exactly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import event
from webhook_helpers import payload, settings_for, signed, start_receiver

from creditbridge.cli.main import cli
from creditbridge.store import open_store
from creditbridge.webhooks import resources
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all

PATH = "/webhooks/moodle"


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    open_store(db_url).dispose()
    settings = settings_for(db_url)
    settings.webhooks.counter_flush_seconds = 3600  # only the flushes the test asks for
    made = create_app({"SETTINGS": settings})
    try:
        yield made
    finally:
        close_app(made)


def statements(app: Flask) -> dict[str, int]:
    """Counts of SQL statements and commits on the app's store from now on."""
    seen = {"statements": 0, "commits": 0}
    engine = resources.store(app).engine

    def on_statement(*_: Any) -> None:
        seen["statements"] += 1

    def on_commit(*_: Any) -> None:
        seen["commits"] += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    return seen


def test_refused_requests_cost_no_sql_until_the_flush(app, db_url):
    c = app.test_client()
    seen = statements(app)
    body, headers = signed(payload())
    for _ in range(100):
        assert c.post(PATH, data=body, headers={**headers, "webhook-signature": "v1,AAAA"}).status_code == 401
        assert c.post(PATH, data=b"{", headers={}).status_code == 400
        assert c.get(PATH).status_code == 405
    assert seen == {"statements": 0, "commits": 0}
    pending = resources.pending_counts(app)
    assert pending.unflushed == 300
    assert pending.flush()
    # One transaction: an upsert per reason, one commit.
    assert seen == {"statements": 3, "commits": 1}
    assert pending.unflushed == 0
    store = open_store(db_url, migrate=False)
    assert read_all(store) == {"bad_signature": 100, "missing_headers": 100, "method_not_allowed": 100}
    store.dispose()


def test_a_failed_flush_keeps_the_counts_for_the_next(app, db_url, monkeypatch):
    c = app.test_client()
    for _ in range(5):
        c.get(PATH)
    pending = resources.pending_counts(app)
    real = pending._store

    def unreachable() -> Any:
        raise ConnectionError("database down")

    monkeypatch.setattr(pending, "_store", unreachable)
    assert pending.flush() is False and pending.unflushed == 5
    c.get(PATH)
    monkeypatch.setattr(pending, "_store", real)
    assert pending.flush() and pending.unflushed == 0
    store = open_store(db_url, migrate=False)
    assert read_all(store) == {"method_not_allowed": 6}
    store.dispose()


def test_two_gunicorn_workers_flush_their_counts_on_the_timer(tmp_path, db_url, runner):
    """Both workers' refusals reach `intake status` within a couple of flush intervals, while the server runs,
    and exactly: nothing lost, nothing counted twice."""
    receiver = start_receiver(tmp_path, db_url, "counter_flush_seconds = 0.5\naccess_log = false\n")
    try:
        body, headers = signed(payload())
        bad = {**headers, "webhook-signature": "v1,AAAA"}
        workers: set[int] = set()
        sent = 0
        # Fresh connections, so the kernel spreads them over both workers; on a busy machine one worker may take
        # many in a row, so go on (bounded) until both have answered.
        while sent < 40 or (len(workers) < 2 and sent < 400):
            with requests.Session() as http:
                assert http.post(receiver.url + PATH, data=body, headers=bad, timeout=10).status_code == 401
                assert http.put(receiver.url + PATH, data=body, headers=headers, timeout=10).status_code == 405
                workers.add(http.get(receiver.url + "/healthz", timeout=10).json()["pid"])
            sent += 1
        expected = {"bad_signature": sent, "method_not_allowed": sent}
        deadline = time.monotonic() + 15
        while True:
            r = runner.invoke(cli, ["--config", str(receiver.config), "intake", "status", "--json"])
            assert r.exit_code == 0, r.output
            counted = json.loads(r.output)["rejected_by_reason"]
            if counted == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counted == expected
        assert len(workers) == 2, workers  # the counts came from both workers
    finally:
        receiver.stop()
    # The stop flushes nothing more (all was flushed already), and counts nothing twice.
    store = open_store(db_url, migrate=False)
    assert read_all(store) == expected
    store.dispose()
