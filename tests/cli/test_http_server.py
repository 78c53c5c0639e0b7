"""The one loopback server helper behind the sandbox, the registry simulator and the quickstart."""

from __future__ import annotations

import logging

import pytest
import requests
from flask import Flask

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.registry_sim import server as registry_server
from creditbridge.sandbox import server as sandbox_server


def _echo_app() -> Flask:
    app = Flask("echo")

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    return app


def test_serves_on_a_free_loopback_port_and_stops() -> None:
    first, second = serve_in_thread(_echo_app()), serve_in_thread(_echo_app())
    try:
        assert first.url.startswith("http://127.0.0.1:") and first.url != second.url
        assert requests.get(first.url + "/ping", timeout=5).text == "pong"
        assert requests.get(second.url + "/ping", timeout=5).text == "pong"
    finally:
        first.stop()
        second.stop()
    assert not first.thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(first.url + "/ping", timeout=2)


def test_request_log_shows_the_path_but_never_the_query(caplog: pytest.LogCaptureFixture) -> None:
    handle = serve_in_thread(_echo_app(), log_requests=True)
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            requests.get(handle.url + "/ping", params={"wstoken": "0123456789abcdef0123456789abcdef"}, timeout=5)
    finally:
        handle.stop()
    assert "GET /ping" in caplog.text
    assert "0123456789abcdef" not in caplog.text


def test_quiet_by_default(caplog: pytest.LogCaptureFixture) -> None:
    handle = serve_in_thread(_echo_app())
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            requests.get(handle.url + "/ping", timeout=5)
    finally:
        handle.stop()
    assert "/ping" not in caplog.text


def test_sandbox_and_registry_sim_share_the_helper() -> None:
    # One ServerHandle type for every in-process server: the quickstart builds on it.
    assert sandbox_server.ServerHandle is registry_server.ServerHandle
    handle = registry_server.serve_in_thread(_echo_app())
    try:
        assert requests.get(handle.url + "/ping", timeout=5).text == "pong"
    finally:
        handle.stop()
