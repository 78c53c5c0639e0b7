"""The supported deployment, run for real: nginx (Debian's package) with deploy/nginx/creditbridge.conf in front of
a real `creditbridge serve`. The config run is the repository's file with only its listen port and upstream port
changed (and, for the rate test, its rate), wrapped in a minimal nginx.conf whose paths are all under tmp_path.

Slow senders come from their own loopback addresses (127.0.0.2, ...), as separate clients would, so the per-address
limits of one do not touch the valid deliveries sent from 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from slow_clients import (
    IN_CI,
    Receiver,
    Trickle,
    closed_by_server,
    deliver,
    deliver_raw,
    free_port,
    need_open_files,
    open_idle,
    request_bytes,
    running_receiver,
    trickle,
)
from webhook_helpers import payload, signed

from creditbridge.cli.main import cli
from creditbridge.settings.model import WebhookSettings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "creditbridge.conf"


def directive(name: str, text: str | None = None) -> list[str]:
    """The values of every active (not commented out) `name ...;` line of the config."""
    text = REPO_CONFIG.read_text() if text is None else text
    return re.findall(rf"^\s*{re.escape(name)}\s+([^;#]+);", text, flags=re.M)


def seconds(name: str) -> float:
    (value,) = directive(name)
    assert value.endswith("s"), f"{name} {value}: written in seconds"
    return float(value[:-1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)),
                                          None)
    if found is None:
        msg = "nginx is not installed (Debian: apt-get install nginx); the reverse-proxy deployment is not tested"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def _sub_once(pattern: str, replacement: str, text: str) -> str:
    new, n = re.subn(pattern, replacement, text, flags=re.M)
    assert n == 1, f"deploy/nginx/creditbridge.conf: expected one line matching {pattern!r}, found {n}"
    return new


@contextmanager
def running_nginx(directory: Path, upstream_port: int, *rewrites: tuple[str, str]) -> Iterator[int]:
    """nginx in the foreground with the repository's config, listening on a free 127.0.0.1 port (yielded) and
    proxying to the receiver on `upstream_port`."""
    binary = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = _sub_once(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{port};", REPO_CONFIG.read_text())
    site = _sub_once(r"^(\s*)server 127\.0\.0\.1:8080;", rf"\1server 127.0.0.1:{upstream_port};", site)
    for pattern, replacement in rewrites:
        site = _sub_once(pattern, replacement, site)
    (directory / "creditbridge.conf").write_text(site)
    d = directory
    # As root, nginx's workers would switch to "nobody", which cannot enter pytest's private tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n{user}"
        "worker_rlimit_nofile 8192;\nevents { worker_connections 4096; }\n"
        f"http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n"
        f"  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n"
        f"  include {d}/creditbridge.conf;\n}}\n")
    with (d / "nginx.out").open("wb") as out:
        proc = subprocess.Popen([binary, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                log = "".join(f.read_text() for f in (d / "nginx.out", d / "error.log") if f.exists())
                assert proc.poll() is None, f"nginx exited with {proc.returncode}:\n{log}"
                assert time.monotonic() < deadline, f"nginx did not listen within 15 s:\n{log}"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One real receiver (one gevent worker, access log on) for the tests of this module."""
    nginx_binary()  # skip or fail before starting anything
    tmp = tmp_path_factory.mktemp("receiver")
    with running_receiver(tmp, f"sqlite:///{tmp / 'state.db'}", "workers = 1\nprocess_inline = false\n") as rx:
        yield rx


def answers_within(socks: list[socket.socket], wait: float) -> list[bytes]:
    """The status lines that arrive on these connections within `wait` seconds."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    answers = []
    deadline = time.monotonic() + wait
    try:
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sel.unregister(key.fileobj)
                answers.append(key.fileobj.recv(4096)[:12])  # type: ignore[union-attr]
    finally:
        sel.close()
    return answers


def access_lines(rx: Receiver, at_least: int = 0) -> list[str]:
    """The receiver's access-log lines of deliveries, once there are `at_least` (gunicorn writes a line just
    after sending its answer, so the sender may read the answer before the line is written)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in rx.log_text().splitlines() if '"POST /webhooks/moodle' in line]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def intake_status(runner, rx: Receiver) -> dict:
    r = runner.invoke(cli, ["--config", rx.config, "intake", "status", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_the_repository_config_agrees_with_the_receiver_settings():
    defaults = WebhookSettings()
    assert directive("client_max_body_size") == ["64k"] and 64 * 1024 == defaults.max_body_bytes
    # a usual delivery (well under 16 KiB) stays in memory; a slow sender's buffer is bounded by this
    assert directive("client_body_buffer_size") == ["16k"]
    assert directive("server") == [f"{defaults.host}:{defaults.port}"]
    assert directive("proxy_request_buffering") == ["on"]
    assert "X-Forwarded-For $remote_addr" in directive("proxy_set_header")
    # nginx drops an idle upstream connection before gunicorn would (a POST on a closed one is a 502)
    assert directive("keepalive_timeout") == ["4s", "5s"]
    assert seconds("client_header_timeout") <= 10 and seconds("client_body_timeout") <= 10
    assert directive("limit_conn_status") == ["429"] and directive("limit_req_status") == ["429"]
    assert directive("listen") == ["80"]  # the TLS lines are there, commented out, for the operator
    assert re.search(r"^\s*#\s*listen 443 ssl;", REPO_CONFIG.read_text(), flags=re.M)


@pytest.mark.timeout(120)
def test_slow_senders_are_cut_off_by_nginx_while_deliveries_succeed(receiver, runner, tmp_path):
    need_open_files(4096)
    header_timeout, body_timeout = seconds("client_header_timeout"), seconds("client_body_timeout")
    (per_address,) = (int(v.split()[1]) for v in directive("limit_conn"))
    before = intake_status(runner, receiver)
    posts_before = len(access_lines(receiver))
    with running_nginx(tmp_path / "nginx", receiver.port) as port:
        head, body = request_bytes()
        seen: dict[str, Trickle] = {}
        senders = {
            # headers one byte every 2 s: cut when the headers' deadline (from the first byte) passes
            "headers": lambda: trickle(port, b"", head + body, give_up_after=header_timeout + 4, source="127.0.0.2"),
            # a body one byte every 2 s: nginx keeps it (each byte restarts client_body_timeout) and buffers it
            "body": lambda: trickle(port, head, body, give_up_after=14, source="127.0.0.3"),
            # two bytes of the body, then silence: 408 after client_body_timeout
            "stalled": lambda: trickle(port, head, body[:2], give_up_after=2 + body_timeout + 4, source="127.0.0.3"),
        }
        threads = [threading.Thread(target=lambda k=k, f=f: seen.__setitem__(k, f())) for k, f in senders.items()]
        for t in threads:
            t.start()
        idle = open_idle(port, 1500, source="127.0.0.4")
        # one address with more requests in progress than limit_conn allows: headers sent, body held back
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.5", 0))
                 for _ in range(per_address + 4)]
        try:
            for s in crowd:
                s.sendall(head)
            assert answers_within(crowd, 3.0) == [b"HTTP/1.1 429"] * 4
            # meanwhile, and until the slow senders are done, deliveries from Moodle's address go through at once
            statuses = []
            n = 0
            while any(t.is_alive() for t in threads):
                n += 1
                status, took, _ = deliver(port, n)
                statuses.append(status)
                assert took < 2, f"delivery {n} took {took:.1f} s"
                time.sleep(1)
            assert set(statuses) == {202} and n >= 5
            # the idle connections were closed by nginx at client_header_timeout
            assert all(closed_by_server(s) for s in idle)
        finally:
            for s in idle + crowd:
                s.close()
        for t in threads:
            t.join(30)
        error_log = (tmp_path / "nginx" / "error.log").read_text()

    headers, slow_body, stalled = seen["headers"], seen["body"], seen["stalled"]
    assert headers.cut_after is not None and header_timeout - 0.5 <= headers.cut_after <= header_timeout + 3, headers
    assert stalled.answer.startswith(b"HTTP/1.1 408 ") or stalled.answer == b"", stalled
    assert stalled.cut_after is not None and 2 + body_timeout - 0.5 <= stalled.cut_after <= 2 + body_timeout + 3
    assert "while reading client request line, client: 127.0.0.2" in error_log
    assert error_log.count('limiting connections by zone "creditbridge_conn", client: 127.0.0.5') == 4
    # Not one byte of the slow senders' requests reached the receiver: nginx buffers the whole body first.
    posts = access_lines(receiver, posts_before + n)[posts_before:]
    assert len(posts) == n and not any(a in line for line in posts for a in ("127.0.0.2", "127.0.0.3", "127.0.0.5"))
    after = intake_status(runner, receiver)
    assert after["received"] - before["received"] == n
    assert after["rejected_by_reason"] == before["rejected_by_reason"]
    # A body trickled faster than client_body_timeout is not cut by nginx (the timer restarts at every byte): it
    # holds the connection, in its own memory only, until the body is complete or the sender stalls. What bounds
    # such senders is limit_conn per address (above) and nginx's worker_connections (docs/webhooks.md).
    assert slow_body.cut_after is None and slow_body.trickled >= 6, slow_body


def test_nginx_forwards_the_sender_address_and_enforces_size_rate_and_healthz_limits(receiver, runner, tmp_path):
    rate_rewrite = (r"rate=100r/s;", "rate=2r/s;")
    burst_rewrite = (r"burst=200 nodelay;", "burst=3 nodelay;")
    before = intake_status(runner, receiver)
    with running_nginx(tmp_path / "nginx", receiver.port, rate_rewrite, burst_rewrite) as port:
        # X-Forwarded-For: the sender's address as nginx saw it, whatever the sender claimed
        posts_before = len(access_lines(receiver))
        status, _, _ = deliver(port, 900, source="127.0.0.7", extra_headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 202
        line = access_lines(receiver, posts_before + 1)[posts_before]
        assert line.startswith("127.0.0.1 ") and line.endswith('"127.0.0.7"') and "203.0.113.9" not in line

        # a body over webhooks.max_body_bytes is refused by nginx, before the receiver
        big = socket.create_connection(("127.0.0.1", port), timeout=5)
        big.sendall(b"POST /webhooks/moodle HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n")
        assert big.recv(4096).startswith(b"HTTP/1.1 413 ")
        big.close()

        # a body larger than nginx's memory buffer (a temporary file under the proxy) still reaches the receiver
        padded = {**payload(userid=902, objectid=902), "padding": "x" * 30_000}
        body, headers = signed(padded)
        status, _, answer = deliver_raw(port, body, headers)
        assert status == 422 and json.loads(answer)["detail"].startswith("padding"), answer
        error_log = (tmp_path / "nginx" / "error.log").read_text()
        assert "a client request body is buffered to a temporary file" in error_log

        # past the rate (here 2/s, burst 3) one address gets 429, which the plugin retries; others are untouched
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.6", 0))
        codes = []
        for _ in range(10):
            conn.request("POST", "/webhooks/moodle", body=b"{}", headers={"webhook-id": "msg_x"})
            resp = conn.getresponse()
            resp.read()
            codes.append(resp.status)
        conn.close()
        assert set(codes) <= {400, 429} and codes.count(429) >= 3, codes
        assert deliver(port, 901)[0] == 202

        # /healthz: this host only
        for source, expected in (("127.0.0.1", 200), ("127.0.0.8", 403)):
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
            probe.request("GET", "/healthz")
            assert probe.getresponse().status == expected, source
            probe.close()
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        other.request("GET", "/")
        assert other.getresponse().status == 404
        other.close()
    time.sleep(1)  # a few of the receiver's counter flushes (slow_clients.running_receiver: every 0.2 s)
    after = intake_status(runner, receiver)
    assert after["received"] - before["received"] == 2
    assert after["rejected_by_reason"]["bad_payload"] - before["rejected_by_reason"].get("bad_payload", 0) == 1
    assert after["rejected_by_reason"].get("too_large", 0) == before["rejected_by_reason"].get("too_large", 0)
    rejected = after["rejected_by_reason"].get("missing_headers", 0) - before["rejected_by_reason"].get(
        "missing_headers", 0)
    assert rejected == codes.count(400)


def test_a_missing_nginx_fails_in_ci_and_skips_with_the_reason_elsewhere(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"nginx is not installed \(Debian: apt-get install nginx\)"):
        nginx_binary()
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="nginx is not installed"):
        nginx_binary()
