"""`creditbridge serve` server settings reaching gunicorn, keep-alive on a real server, background processing
after the answer, and the hot path surviving a dropped database connection."""

from __future__ import annotations

import http.client
import shlex
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from webhook_helpers import SECRET, payload, seed, settings_for, signed

from creditbridge.cli.main import cli
from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.webhooks import background as background_module  # where the thread looks process_pending up
from creditbridge.webhooks import processing
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all


def write_config(tmp_path: Path, db_url: str, extra: str = "") -> str:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n{extra}')
    return str(path)


def serve_argv(runner, config: str, *flags: str) -> list[str]:
    r = runner.invoke(cli, ["--config", config, "serve", "--print-command", *flags])
    assert r.exit_code == 0, r.output
    return shlex.split(r.output.strip())


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_worker_settings_reach_the_gunicorn_command_line(runner, tmp_path, sqlite_url):
    default = serve_argv(runner, write_config(tmp_path, sqlite_url))
    # gevent: gunicorn's gevent worker, quiet on Ctrl-C (webhooks/gunicorn_worker.py)
    assert (option(default, "--worker-class"), option(default, "--worker-connections"), option(default, "--workers"),
            option(default, "--keep-alive")) == ("creditbridge.webhooks.gunicorn_worker.QuietGeventWorker", "2000",
                                                 "2", "5")
    assert "--threads" not in default
    assert "--access-logfile" in default and default[-1] == "creditbridge.webhooks.wsgi:app"

    cfg = write_config(tmp_path, sqlite_url, 'worker_class = "sync"\nworkers = 3\naccess_log = false\n'
                                             "keepalive_seconds = 7\n")
    sync = serve_argv(runner, cfg)
    assert (option(sync, "--worker-class"), option(sync, "--workers"), option(sync, "--keep-alive")) == (
        "sync", "3", "7")
    assert "--threads" not in sync and "--access-logfile" not in sync

    flags = serve_argv(runner, cfg, "--worker-class", "gthread", "--threads", "6", "--workers", "1")
    assert (option(flags, "--worker-class"), option(flags, "--threads"), option(flags, "--workers")) == (
        "gthread", "6", "1")
    assert "--worker-connections" not in flags


def test_bad_worker_class_in_settings_is_refused(runner, tmp_path, sqlite_url):
    r = runner.invoke(cli, ["--config", write_config(tmp_path, sqlite_url, 'worker_class = "eventlet"\n'),
                            "serve", "--print-command"])
    assert r.exit_code != 0 and "worker_class" in r.output


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_server_keeps_the_connection_alive(tmp_path, sqlite_url, worker_class):
    """Under gevent (the default) and gthread workers one TCP connection carries many deliveries (sync would
    close it)."""
    open_store(sqlite_url).dispose()
    cfg = write_config(tmp_path, sqlite_url, f'workers = 1\nthreads = 2\nprocess_inline = false\n'
                                             f'worker_class = "{worker_class}"\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", cfg, "serve",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sockets = set()
        for i in range(5):
            body, headers = signed(payload(userid=500 + i, objectid=500 + i))
            conn.request("POST", "/webhooks/moodle", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 202
            assert (resp.getheader("Connection") or "").lower() != "close"
            sockets.add(id(conn.sock))
        assert len(sockets) == 1 and conn.sock is not None
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = open_store(sqlite_url)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 5
    store.dispose()


def test_background_processing_drains_after_the_answer(db_url):
    store = open_store(db_url)
    seed(store)
    settings = settings_for(db_url)
    settings.webhooks.inline_mode = "background"
    app = create_app({"SETTINGS": settings})
    c = app.test_client()
    sends = [signed(payload()), signed(payload(userid=99, username="nobody", objectid=9)),
             signed(payload("activity_completion_updated", objectid=3, timecreated=1795385697))]
    for body, headers in sends:
        assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    assert c.post("/webhooks/moodle", data=sends[0][0], headers=sends[0][1]).status_code == 200
    background = app.extensions["creditbridge_background"]
    assert background.drain(timeout=30)
    with store.session() as s:
        states = dict(s.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.state)).all())
        kinds = sorted(s.scalars(select(LearningRecordRow.kind)))
        parked = s.scalars(select(ParkedEvent.reason)).all()
        received = s.scalars(select(WebhookDelivery.received_at)).all()
    assert sorted(states.values()) == ["parked", "processed", "processed"]
    assert kinds == ["activity", "course"] and parked == ["unknown Moodle user 99 (nobody)"]
    # rows written by the receiver's hot path read back as aware UTC times, like any other row
    assert all(r.tzinfo is not None and abs(datetime.now(UTC) - r) < timedelta(minutes=5) for r in received)
    assert read_all(store) == {"duplicate": 1}
    close_app(app)
    store.dispose()


def test_background_queue_full_leaves_deliveries_pending_for_replay(runner, tmp_path, sqlite_url, monkeypatch):
    store = open_store(sqlite_url)
    seed(store)
    config = write_config(tmp_path, sqlite_url, 'inline_mode = "background"\nbackground_queue = 1\n')
    release = threading.Event()
    real = processing.process_pending

    def slow(*args, **kwargs):  # a processing run slower than the arrivals
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(background_module, "process_pending", slow)
    app = create_app({"CONFIG_PATH": config})
    c = app.test_client()
    sends = [signed(payload("activity_completion_updated", cmid=10 + i, objectid=10 + i)) for i in range(3)]
    body, headers = sends[0]
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    background = app.extensions["creditbridge_background"]
    deadline = time.monotonic() + 10
    while background.queue.qsize() and time.monotonic() < deadline:  # the thread took the first one
        time.sleep(0.01)
    for body, headers in sends[1:]:  # one fits the queue, the other does not
        assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    assert background.skipped == 1
    release.set()
    close_app(app)  # drains the queue
    monkeypatch.setattr(background_module, "process_pending", real)
    with store.session() as s:
        assert s.scalar(select(func.count()).where(WebhookDelivery.state == "pending")) == 1
        assert s.scalar(select(func.count()).select_from(LearningRecordRow)) == 2
    r = runner.invoke(cli, ["--config", config, "intake", "replay", "--json"])
    assert r.exit_code == 0, r.output
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(LearningRecordRow)) == 3
        assert s.scalar(select(func.count()).where(WebhookDelivery.state == "pending")) == 0
    store.dispose()


def test_dropped_database_connection_costs_no_delivery(pg_url):
    """The pool does not ping per request; a connection PostgreSQL dropped is replaced within the request."""
    store = open_store(pg_url)
    settings = settings_for(pg_url)
    settings.webhooks.process_inline = False
    app = create_app({"SETTINGS": settings})
    c = app.test_client()
    body, headers = signed(payload(objectid=1))
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    admin.dispose()
    assert killed >= 1
    body, headers = signed(payload(objectid=2))
    r = c.post("/webhooks/moodle", data=body, headers=headers)
    assert r.status_code == 202, r.json
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
    close_app(app)
    store.dispose()
