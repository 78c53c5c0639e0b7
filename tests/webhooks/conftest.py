"""Shared by the intake tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _stop_sandbox_webhook_senders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A sandbox's webhook sender thread outlives the sandbox's HTTP server (its handle does not stop it), and
    tests run later in the same process (quickstart's) check that no sender thread is left: stop each one."""
    try:
        from creditbridge.sandbox import webhook_sender
    except ImportError:
        yield
        return
    started: list[Any] = []
    real = webhook_sender.install

    def install(app: Any, state: Any) -> Any:
        sender = real(app, state)
        started.append(sender)
        return sender

    monkeypatch.setattr(webhook_sender, "install", install)
    yield
    for sender in started:
        sender.stop()
