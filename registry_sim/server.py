"""Run the simulator on a real loopback socket (threaded werkzeug server) in a thread."""

from __future__ import annotations

from flask import Flask

from creditbridge.cli.http_server import QuietHandler, ServerHandle
from creditbridge.cli.http_server import serve_in_thread as _serve_in_thread

__all__ = ["QuietHandler", "ServerHandle", "serve_in_thread"]


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> ServerHandle:
    """`quiet=False` logs each request's method and path (never its query string)."""
    return _serve_in_thread(app, host, port, log_requests=not quiet, name="registry-sim")
