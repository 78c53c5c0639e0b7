"""Hostile review: a Moodle so overloaded it stops answering (every PHP worker busy, calls time out) makes the
concurrent limiter back off as a 429/503 does; before, a read timeout left the calls in flight unchanged."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from creditbridge.connector.errors import TransientError
from creditbridge.connector.retry import RetryPolicy
from creditbridge.connector.transport import Limiter, Transport


class _Silent(BaseHTTPRequestHandler):
    """Takes the request in, then answers only after the client has given up."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(1.0)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def silent_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _transport(url: str, limiter: Limiter) -> Transport:
    return Transport(url, "0123456789abcdef0123456789abcdef", read_timeout=0.2, limiter=limiter,
                     policy=RetryPolicy(retries=0, backoff_seconds=0))


def test_a_read_timeout_halves_the_calls_in_flight(silent_site: str) -> None:
    limiter = Limiter(4)
    transport = _transport(silent_site, limiter)
    try:
        with pytest.raises(TransientError, match=r"timed out after 0\.2s waiting for"):
            transport.post("core_user_create_users", [("users[0][username]", "t1")], safe=False)
    finally:
        transport.close()
    assert limiter.limit == 2 and limiter.lowest == 2 and limiter.in_flight == 0


def test_a_refused_connection_is_no_sign_of_load() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limiter = Limiter(4)
    transport = _transport(f"http://127.0.0.1:{port}", limiter)
    try:
        with pytest.raises(TransientError, match="cannot connect"):
            transport.post("core_user_create_users", [("users[0][username]", "t1")], safe=False)
    finally:
        transport.close()
    assert limiter.limit == 4 and limiter.in_flight == 0
