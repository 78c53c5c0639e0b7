"""Serve the sandbox (or any WSGI app) on 127.0.0.1 in a background thread: tests and `creditbridge sandbox`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No access log: tests and in-process users (quickstart) make thousands of calls."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _PathOnlyHandler(WSGIRequestHandler):
    """Access log without query strings: a client may put wstoken there, and tokens never go to logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


@dataclass
class ServerHandle:
    server: BaseWSGIServer
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False) -> ServerHandle:
    """Start a threaded werkzeug server; port 0 picks a free one (see handle.url)."""
    handler = _PathOnlyHandler if log_requests else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    # A short poll interval makes stop() quick (the default 0.5 s would dominate a test's fixture time).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http",
                              daemon=True)
    thread.start()
    url = f"http://{host}:{server.server_port}"
    _settle_wwwroot(app, url)
    return ServerHandle(server, thread, url)


def _settle_wwwroot(app: Any, url: str) -> None:
    """A sandbox without SANDBOX_WWWROOT is the site at the URL it is served on: site info, links and the
    webhooks' `site` then agree (the receiver and reconciliation key completions by site)."""
    config = getattr(app, "config", None)
    if config is None or "SANDBOX_TOKEN" not in config or config.get("SANDBOX_WWWROOT"):
        return
    config["SANDBOX_WWWROOT"] = url
    sender = app.extensions.get("sandbox_webhook_sender")
    if sender is not None:
        sender.site = url
