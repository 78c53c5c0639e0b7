"""A real `creditbridge serve` in a subprocess, and the clients that misbehave towards it: senders that trickle
a request one byte at a time, connections that never send anything. Loopback only, every loop bounded."""

from __future__ import annotations

import http.client
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from webhook_helpers import SECRET, payload, signed

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_open_files(n: int) -> None:
    """Raise this process's soft open-files limit to `n` (its children inherit it); fail in CI and skip elsewhere
    when the hard limit is lower, saying so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            msg = f"this test needs {n} open files, the hard limit (ulimit -Hn) is {hard}"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


@dataclass
class Receiver:
    port: int
    process: subprocess.Popen[bytes]
    config: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_receiver(tmp_path: Path, db_url: str, webhooks: str = "",
                     open_files: int | None = None) -> Iterator[Receiver]:
    """`creditbridge serve` with these [webhooks] settings, answering /healthz; stopped afterwards. `open_files`:
    start it with that soft open-files limit (its hard limit unchanged)."""
    config = tmp_path / "creditbridge.toml"
    # Refusals are counted in memory and flushed to the store: often here, so intake status sees them within 1 s.
    flush = "" if "counter_flush_seconds" in webhooks else "counter_flush_seconds = 0.2\n"
    config.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n{flush}{webhooks}')
    port = free_port()
    log = tmp_path / "receiver.log"

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "serve",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=limit_open_files)
    receiver = Receiver(port, proc, str(config), log)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            assert proc.poll() is None, f"receiver exited with {proc.returncode}:\n{receiver.log_text()}"
            assert time.monotonic() < deadline, f"receiver did not start within 60 s:\n{receiver.log_text()}"
            time.sleep(0.2)
        yield receiver
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def deliver(port: int, n: int, source: str = "127.0.0.1",
            extra_headers: dict[str, str] | None = None) -> tuple[int, float, bytes]:
    """POST one valid signed delivery (objectid `n`); its status, seconds taken and body."""
    body, headers = signed(payload(userid=1000 + n, objectid=1000 + n))
    return deliver_raw(port, body, {**headers, **(extra_headers or {})}, source)


def deliver_raw(port: int, body: bytes, headers: dict[str, str],
                source: str = "127.0.0.1") -> tuple[int, float, bytes]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/webhooks/moodle", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, time.monotonic() - started, resp.read()
    finally:
        conn.close()


def request_bytes(n: int = 1) -> tuple[bytes, bytes]:
    """A valid signed delivery as raw bytes: (request line and headers, body)."""
    body, headers = signed(payload(userid=2000 + n, objectid=2000 + n))
    head = "POST /webhooks/moodle HTTP/1.1\r\nHost: creditbridge.test\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode(), body


@dataclass
class Trickle:
    """What a slow sender saw: the answer it got (maybe none), when the server closed the connection (seconds
    after it connected; None if still open when the sender gave up), and how many bytes it trickled."""
    answer: bytes
    cut_after: float | None
    trickled: int


def trickle(port: int, at_once: bytes, slowly: bytes, *, every: float = 2.0, give_up_after: float = 15.0,
            source: str = "127.0.0.1") -> Trickle:
    """Send `at_once`, then `slowly` one byte every `every` seconds, then nothing, until the server answers or
    closes, or `give_up_after` seconds have passed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    answer = b""
    started = time.monotonic()
    next_byte_at = started
    sent = 0
    try:
        if at_once:
            sock.sendall(at_once)  # a few hundred bytes: fits the socket buffer at once
        while (now := time.monotonic()) - started < give_up_after:
            if sent < len(slowly) and now >= next_byte_at:
                try:
                    sock.send(slowly[sent:sent + 1])
                except OSError:  # reset by the server
                    return Trickle(answer, now - started, sent)
                sent += 1
                next_byte_at += every
            wait = min(next_byte_at if sent < len(slowly) else started + give_up_after,
                       started + give_up_after) - time.monotonic()
            if sel.select(max(wait, 0.01)):
                try:
                    chunk = sock.recv(65536)
                except OSError:  # reset, possibly after an answer already read
                    return Trickle(answer, time.monotonic() - started, sent)
                if not chunk:
                    return Trickle(answer, time.monotonic() - started, sent)
                answer += chunk
        return Trickle(answer, None, sent)
    finally:
        sel.close()
        sock.close()


def open_idle(port: int, n: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """`n` connections that never send anything."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
            s.setblocking(False)
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True
