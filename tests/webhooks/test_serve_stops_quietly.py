"""Ctrl-C on `creditbridge serve` (SIGINT to the whole foreground process group, gunicorn's quick stop; attack
report item 11): under gevent workers it printed a gevent traceback "SystemExit: 0 … failed with SystemExit".
The receiver stops with no traceback, exit 0, and what it acknowledged before is stored."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select
from webhook_helpers import payload, signed, start_receiver

from creditbridge.store.models.intake import WebhookDelivery


def test_ctrl_c_stops_the_gevent_receiver_without_a_traceback(tmp_path: Path, sqlite_url: str) -> None:
    receiver = start_receiver(tmp_path, sqlite_url, "access_log = false\n", workers=2)
    try:
        body, headers = signed(payload())
        assert requests.post(receiver.url + "/webhooks/moodle", data=body, headers=headers, timeout=10
                             ).status_code == 202
        os.killpg(receiver.proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        assert receiver.proc.wait(timeout=60) == 0
    finally:
        if receiver.proc.poll() is None:
            receiver.proc.kill()
    log = receiver.log.read_text(encoding="utf-8", errors="replace")
    assert "Handling signal: int" in log and log.count("Worker exiting") == 2, log
    assert "Traceback" not in log and "SystemExit" not in log, log
    engine = create_engine(sqlite_url)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 1
    engine.dispose()
