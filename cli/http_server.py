"""Serve a WSGI app (sandbox, registry simulator, webhook receiver) on a loopback socket from a thread.

One helper for every in-process server: tests, benchmarks, `creditbridge sandbox`/`registry-sim` and
the quickstart all need the same threaded werkzeug server that picks a free port and stops quickly.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any, cast

import click
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log line per request: at thousands of calls a second it would drown the real log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class PathOnlyHandler(WSGIRequestHandler):
    """Access log without query strings: a client may put a token there, and tokens never go to logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


@dataclass
class ServerHandle:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        # An AF_INET server: its host is text (the stub's bytes are AF_UNIX paths).
        return f"http://{cast(str, host)}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def make_loopback_server(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                         log_requests: bool = False) -> BaseWSGIServer:
    """A threaded werkzeug server; port 0 lets the OS pick a free port (read it from `server_address`).

    A port in use raises OSError here: werkzeug's own bind would print and `sys.exit(1)` instead.
    """
    handler = PathOnlyHandler if log_requests else QuietHandler
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        # werkzeug duplicates the descriptor, so closing ours when the block ends leaves its socket open.
        return make_server(host, sock.getsockname()[1], app, threaded=True, request_handler=handler,
                           fd=sock.fileno())


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False,
                    name: str = "http-server") -> ServerHandle:
    """Start serving `app` in a daemon thread; `handle.url` says where, `handle.stop()` ends it."""
    server = make_loopback_server(app, host, port, log_requests=log_requests)
    # A short poll interval makes stop() quick (the default 0.5 s would dominate a test's fixture time).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return ServerHandle(server, thread)


def serve_until_interrupted(app: Any, host: str, port: int, *, announce: str = "") -> None:
    """Serve in the foreground until Ctrl-C; `announce` is printed to stderr with {url} filled in."""

    server = make_loopback_server(app, host, port, log_requests=True)
    if announce:
        click.echo(announce.format(url=f"http://{host}:{server.server_address[1]}"), err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
