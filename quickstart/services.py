"""The three outside systems of the quickstart, each a real HTTP server on 127.0.0.1 in this process:
the sandbox LMS, the webhook receiver and the registry simulator. Every start registers its stop on the
caller's ExitStack, so an error at any step still shuts everything down."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from creditbridge.registry_sim.app import create_app as create_registry
from creditbridge.registry_sim.server import QuietHandler, ServerHandle
from creditbridge.sandbox.app import create_app as create_sandbox
from creditbridge.sandbox.app import state_of
from creditbridge.settings import Settings
from creditbridge.settings.private import new_username_key

# The sandbox calls itself by this address in every webhook and in its site info, whatever port it is
# served on now: the store keys completions by site, so a later `creditbridge sandbox --port 8765` on the
# same sandbox file is the same site, and reconciliation then matches what the webhooks recorded.
SANDBOX_WWWROOT = "http://127.0.0.1:8765"
REGISTRY_KEY_ID = "creditbridge"


@dataclass(frozen=True)
class Secrets:
    """Fresh per quickstart directory; they protect nothing but the demo's own local servers."""

    sandbox_token: str
    webhook_secret: str
    registry_secret: str
    username_key: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(sandbox_token=secrets.token_hex(16),
                   webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
                   registry_secret=secrets.token_urlsafe(24), username_key=new_username_key())


@dataclass
class Services:
    sandbox_url: str
    receiver_url: str
    registry_url: str
    sandbox_app: Flask
    receiver_app: Flask
    registry_app: Flask

    def webhook_sender(self) -> Any | None:
        """The sandbox's webhook sender (None when the sandbox did not install one)."""
        return self.sandbox_app.extensions.get("sandbox_webhook_sender")

    def save_sandbox(self, path: Path) -> None:
        """Copy the sandbox's in-memory site to a file `creditbridge sandbox --db FILE` can serve later.
        In memory while the quickstart runs: a file would cost a disk sync per completion."""
        state = state_of(self.sandbox_app)
        target = sqlite3.connect(path)
        try:
            with state.lock:
                state.db.backup(target)
        finally:
            target.close()

    def registry_counts(self) -> dict[str, int]:
        """What the registry simulator itself holds, by record state (active, superseded, ...)."""
        sim = self.registry_app.extensions["registry_sim"]
        with sim.db.lock:
            return sim.db.counts()


def _serve(app: Flask, name: str) -> ServerHandle:
    # Port 0: the OS picks a free port, so a quickstart never collides with a running sandbox or receiver.
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return ServerHandle(server, thread)


def start_services(stack: ExitStack, settings: Settings, keys: Secrets, directory: Path) -> Services:
    """Start receiver, sandbox (sending its completions to the receiver) and registry-sim."""
    # Loaded when a run starts the receiver: `creditbridge --help` imports this module (through the quickstart
    # command's), and the receiver's app with gevent, which nothing else there needs, would add 2-3% to it (#17).
    from creditbridge.webhooks.app import close_app  # noqa: PLC0415
    from creditbridge.webhooks.app import create_app as create_receiver  # noqa: PLC0415

    # The quickstart opened (and so migrated) the store already.
    receiver_app = create_receiver({"SETTINGS": settings, "DATABASE_URL": settings.database.url,
                                    "WEBHOOK_SECRETS": [keys.webhook_secret], "STORE_MIGRATE": False})
    stack.callback(close_app, receiver_app)
    receiver = _serve(receiver_app, "quickstart-receiver")
    stack.callback(receiver.stop)

    sandbox_app = create_sandbox({
        "SANDBOX_TOKEN": keys.sandbox_token,
        "SANDBOX_DB": ":memory:",  # saved to sandbox.db at the end (Services.save_sandbox)
        "SANDBOX_WWWROOT": SANDBOX_WWWROOT,
        "SANDBOX_WEBHOOK_URL": receiver.url + "/webhooks/moodle",
        "SANDBOX_WEBHOOK_SECRET": keys.webhook_secret,
    })
    # Not sandbox.server.serve_in_thread: that one logs every request, thousands of lines here.
    sandbox = _serve(sandbox_app, "quickstart-sandbox")
    # LIFO: the sender stops (after its queue is drained by the caller) before the server goes away.
    stack.callback(sandbox.stop)
    sender = sandbox_app.extensions.get("sandbox_webhook_sender")
    if sender is not None:
        stack.callback(sender.stop)

    registry_app = create_registry({"REGISTRY_SIM_DB": str(directory / "registry-sim.db"),
                                    "REGISTRY_SIM_KEYS": {REGISTRY_KEY_ID: keys.registry_secret}})
    stack.callback(_close_registry, registry_app)
    registry = _serve(registry_app, "quickstart-registry-sim")
    stack.callback(registry.stop)

    return Services(sandbox_url=sandbox.url, receiver_url=receiver.url, registry_url=registry.url,
                    sandbox_app=sandbox_app, receiver_app=receiver_app, registry_app=registry_app)


def _close_registry(app: Flask) -> None:
    sim = app.extensions.get("registry_sim")
    if sim is not None:
        with sim.db.lock:
            sim.db.close()
