"""The receiver itself (a real `creditbridge serve`, gevent workers) against slow senders and idle connections:
a body trickled one byte every 2 s gets 408 within webhooks.read_timeout_seconds and is counted, slow headers and
idle connections are closed after the keep-alive, 2,000 idle connections leave deliveries answered at once, and
settings or an open-files limit that cannot work are refused before anything starts."""

from __future__ import annotations

import http.client
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from slow_clients import (
    Trickle,
    closed_by_server,
    deliver,
    need_open_files,
    open_idle,
    request_bytes,
    running_receiver,
    trickle,
)
from webhook_helpers import payload, signed

from creditbridge.cli.main import cli
from creditbridge.webhooks.commands import FD_HEADROOM


def intake_status(runner, config: str) -> dict:
    time.sleep(1)  # a few of the receiver's counter flushes (counter_flush_seconds = 0.2)
    r = runner.invoke(cli, ["--config", config, "intake", "status", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_a_body_trickled_one_byte_every_2s_gets_408_within_the_read_timeout(runner, tmp_path, sqlite_url):
    with running_receiver(tmp_path, sqlite_url, "workers = 1\nread_timeout_seconds = 3\nprocess_inline = false\n"
                          ) as rx:
        head, body = request_bytes()
        seen: list[Trickle] = []
        slow = threading.Thread(target=lambda: seen.append(trickle(rx.port, head, body, give_up_after=12)))
        slow.start()
        time.sleep(0.5)
        # While the slow sender holds its connection, the one worker answers everyone else at once.
        for n in range(3):
            status, seconds, _ = deliver(rx.port, n)
            assert status == 202 and seconds < 2, (status, seconds)
            time.sleep(0.5)
        slow.join(20)
        outcome = seen[0]
        assert outcome.answer.startswith(b"HTTP/1.1 408 "), outcome
        doc = json.loads(outcome.answer.split(b"\r\n\r\n", 1)[1])
        assert doc == {"ok": False, "reason": "read_timeout", "detail": "body not received within 3 s"}
        # 3 s after the headers (+ scheduling slack), having trickled 2 or 3 bytes; then the connection is closed
        assert outcome.cut_after is not None and 2.9 <= outcome.cut_after <= 5.5, outcome
        assert outcome.trickled <= 3
        status = intake_status(runner, rx.config)
    assert status["rejected_by_reason"] == {"read_timeout": 1}
    assert status["received"] == 3


def test_slow_headers_and_idle_connections_are_closed_after_the_keepalive(tmp_path, sqlite_url):
    with running_receiver(tmp_path, sqlite_url, "workers = 1\nkeepalive_seconds = 2\nprocess_inline = false\n"
                          ) as rx:
        idle = open_idle(rx.port, 3)
        # a kept-alive connection that carried a delivery, then went quiet
        kept = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
        delivery, headers = signed(payload(userid=3000, objectid=3000))
        kept.request("POST", "/webhooks/moodle", body=delivery, headers=headers)
        answer = kept.getresponse()
        answer.read()
        assert answer.status == 202 and answer.getheader("Connection") == "keep-alive"
        assert kept.sock is not None
        kept.sock.setblocking(False)
        head, body = request_bytes()
        # headers trickled: gunicorn's gevent worker reads a request's line and headers within the keep-alive
        outcome = trickle(rx.port, b"", head + body, give_up_after=10)
        assert outcome.answer == b"" and outcome.cut_after is not None and 1.9 <= outcome.cut_after <= 4.5, outcome
        try:
            assert all(closed_by_server(s) for s in idle)
            assert closed_by_server(kept.sock)
        finally:
            for s in idle:
                s.close()
            kept.close()
        status, _, _ = deliver(rx.port, 1)
        assert status == 202


@pytest.mark.timeout(180)
def test_2000_idle_connections_leave_deliveries_answered_at_once(tmp_path, sqlite_url):
    """Default workers and worker_connections, started with a soft open-files limit of 1,024 (`serve` raises it).
    The keep-alive is long so the idle connections stay open the whole time: the deliveries have to be served
    beside them, not after the keep-alive has closed them (with the former 1,000 per worker they waited for it)."""
    need_open_files(4096)  # the 2,000 client ends here, and a hard limit above the receiver's 2,128
    with running_receiver(tmp_path, sqlite_url, "keepalive_seconds = 60\nprocess_inline = false\n"
                                                "access_log = false\n", open_files=1024) as rx:
        limits = Path(f"/proc/{rx.process.pid}/limits").read_text()
        soft = int(next(line for line in limits.splitlines() if line.startswith("Max open files")).split()[3])
        assert soft >= 2000 + FD_HEADROOM
        idle = open_idle(rx.port, 2000)
        try:
            time.sleep(1.0)  # let the workers accept them
            for n in range(3):
                status, seconds, _ = deliver(rx.port, n)
                assert status == 202 and seconds < 3, (n, status, seconds)
            # they were all still open, i.e. held by the workers, while the deliveries went through
            assert not any(closed_by_server(s) for s in idle)
        finally:
            for s in idle:
                s.close()
        assert rx.process.poll() is None


def test_an_open_files_limit_below_worker_connections_is_refused_before_anything_starts(tmp_path):
    db = tmp_path / "state.db"
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n[webhooks]\nsecrets = ["whsec_eHh4"]\n')

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    r = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "serve",
                        "--port", "1"], capture_output=True, text=True, timeout=60, preexec_fn=low_limit)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"error: webhooks.worker_connections = 2000 needs {2000 + FD_HEADROOM} open files "
                                "per worker, but the hard limit (ulimit -Hn) is 256: lower worker_connections or "
                                "raise the limit")
    assert not db.exists()  # refused before the store was opened or migrated
    # gthread workers do not use worker_connections: not refused for it
    shown = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "serve",
                            "--worker-class", "gthread", "--print-command"], capture_output=True, text=True,
                           timeout=60, preexec_fn=low_limit)
    assert shown.returncode == 0 and "gunicorn" in shown.stdout, shown.stderr


@pytest.mark.parametrize(("setting", "named", "says"), [
    ("read_timeout_seconds = 0", "webhooks.read_timeout_seconds", "greater than 0"),
    ("read_timeout_seconds = -1.5", "webhooks.read_timeout_seconds", "greater than 0"),
    ("read_timeout_seconds = 301", "webhooks.read_timeout_seconds", "less than or equal to 300"),
    ('read_timeout_seconds = "soon"', "webhooks.read_timeout_seconds", "valid number"),
    ("read_timeout_seconds = nan", "webhooks.read_timeout_seconds", "finite number"),
    ("read_timeout_seconds = inf", "webhooks.read_timeout_seconds", "finite number"),
    ("keepalive_seconds = 0", "webhooks.keepalive_seconds", "greater than or equal to 1"),
    ("worker_connections = 0", "webhooks.worker_connections", "greater than or equal to 1"),
    ("worker_connections = 100000", "webhooks.worker_connections", "less than or equal to 10000"),
])
def test_timeouts_and_limits_that_cannot_work_are_refused(runner, tmp_path, sqlite_url, setting, named, says):
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n[webhooks]\n{setting}\n')
    r = runner.invoke(cli, ["--config", str(config), "serve", "--print-command"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and named in r.output and says in r.output, r.output

