"""Serve the sandbox on 127.0.0.1 in a background thread: tests, benchmarks and `creditbridge sandbox`."""

from __future__ import annotations

from typing import Any

from creditbridge.cli.http_server import ServerHandle
from creditbridge.cli.http_server import serve_in_thread as _serve_in_thread

__all__ = ["ServerHandle", "serve_in_thread"]


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False) -> ServerHandle:
    """Start a threaded werkzeug server; port 0 picks a free one (see handle.url)."""
    handle = _serve_in_thread(app, host, port, log_requests=log_requests, name="sandbox-http")
    _settle_wwwroot(app, handle.url)
    return handle


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
