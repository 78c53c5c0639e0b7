"""The webhook receiver: a Flask app with POST /webhooks/moodle (webhooks/endpoint.py) and GET /healthz.

The delivery endpoint is a plain WSGI app mounted at its path (werkzeug's DispatcherMiddleware): it is the hot
path and runs without Flask's request machinery. Everything else is an ordinary blueprint route.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from creditbridge.metrics import MetricsPort, build_registry, metrics_app
from creditbridge.settings import Settings, load_settings
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks import resources
from creditbridge.webhooks.endpoint import PATH, DeliveryEndpoint

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    metrics = resources.outcomes(app)
    try:
        with resources.store(app).session() as s:
            pending = s.scalar(select(func.count()).select_from(WebhookDelivery)
                               .where(WebhookDelivery.state == "pending"))
    except Exception as e:
        log.warning("store unreachable: %s", type(e).__name__)
        return jsonify({"ok": False, "store": "unreachable", "outcomes": metrics}), 503
    writer = resources.writer_if_open(app)
    # This worker's group commit: deliveries / batches is its mean batch size.
    batches = {"batches": writer.batches if writer else 0, "deliveries": writer.deliveries if writer else 0}
    # Refusals this worker counted that its next flush adds to intake_counter (webhooks.counter_flush_seconds).
    unflushed = resources.pending_counts(app).unflushed
    return jsonify({"ok": True, "pending": pending, "outcomes": metrics, "store_batches": batches,
                    "unflushed": unflushed, "pid": os.getpid()}), 200


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory. Config keys: SETTINGS (a Settings), CONFIG_PATH, DATABASE_URL, WEBHOOK_SECRETS (list),
    WEBHOOKS_PROCESS_INLINE, WEBHOOKS_INLINE_MODE ("request" | "background"; default from settings),
    STORE_MIGRATE (default True: bring the schema up to date when the store is first opened)."""
    app = Flask(__name__)
    cfg = dict(test_config or {})
    settings: Settings = cfg.pop("SETTINGS", None) or load_settings(cfg.get("CONFIG_PATH"))
    app.config.update(cfg)
    app.config.setdefault("DATABASE_URL", settings.database.url)
    secrets = app.config.get("WEBHOOK_SECRETS") or [s.get_secret_value() for s in settings.webhooks.secrets]
    resources.install(app, settings)
    app.register_blueprint(bp)
    endpoint = DeliveryEndpoint(app, [Webhook(s) for s in secrets if s])
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PATH: endpoint})  # type: ignore[method-assign]
    if settings.metrics.port:
        # GET /metrics on metrics.port only (`serve` binds it as a second gunicorn address; docs/operations.md).
        registry = build_registry(lambda: resources.store(app), settings.metrics.cache_seconds)
        app.wsgi_app = MetricsPort(app.wsgi_app, metrics_app(registry),  # type: ignore[method-assign]
                                   settings.metrics.port)

    @app.errorhandler(400)
    def _bad_request(e: Exception) -> tuple[Any, int]:
        return jsonify({"ok": False, "reason": "bad_request", "detail": "malformed request"}), 400

    return app


def close_app(app: Flask) -> None:
    """Stop the app's writer and background thread and dispose its store (tests and `serve` call this)."""
    resources.close(app)
