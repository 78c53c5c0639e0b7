"""The webhook receiver: size limit, signature on the raw bytes, schema, then one durable, deduping insert.

Order matters (as in PyPI's warehouse): nothing is parsed before the signature is checked, and the
2xx goes out only after the inbox row is committed, so an acknowledged delivery survives any crash.
"""

from __future__ import annotations

import binascii
import logging
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.counters import bump
from creditbridge.webhooks.payload import WebhookPayload

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

_METRICS_LOCK = threading.Lock()


def _settings() -> Settings:
    return current_app.extensions["creditbridge_settings"]


def get_store() -> Store:
    """One Store per app, opened on first use (its engine pools connections across requests)."""
    ext = current_app.extensions
    store = ext.get("creditbridge_store")
    if store is None:
        with _METRICS_LOCK:
            store = ext.get("creditbridge_store")
            if store is None:
                store = open_store(current_app.config["DATABASE_URL"])
                ext["creditbridge_store"] = store
    g.store = store
    return store


def _count(reason: str) -> None:
    with _METRICS_LOCK:
        current_app.extensions["creditbridge_metrics"][reason] += 1


def _reject(status: int, reason: str, detail: str) -> tuple[Any, int]:
    _count(reason)
    try:
        bump(get_store(), reason)
    except Exception:  # a counter must never turn a 4xx into a 5xx
        log.exception("could not count %s", reason)
    return jsonify({"ok": False, "reason": reason, "detail": detail}), status


def _verify(body: bytes, headers: dict[str, str]) -> str | None:
    """None if some configured secret signed this body; otherwise the reason code."""
    if not all(headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
        return "missing_headers"
    verifiers: list[Webhook] = current_app.extensions["creditbridge_verifiers"]
    if not verifiers:
        return "no_secret_configured"
    reason = "bad_signature"
    for wh in verifiers:
        try:
            wh.verify(body, headers, json_parse=False)
            return None
        except WebhookVerificationError as e:
            text = str(e)
            if "too old" in text:
                return "timestamp_too_old"
            if "too new" in text:
                return "timestamp_too_new"
            if "Invalid Signature Headers" in text:
                return "bad_timestamp"
        except (ValueError, binascii.Error, UnicodeDecodeError):
            # malformed signature list or a body that is not UTF-8: the library raises plain errors
            reason = "bad_signature"
    return reason


@bp.post("/webhooks/moodle")
def receive() -> tuple[Any, int]:
    limit = _settings().webhooks.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(413, "too_large", f"body over {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _reject(413, "too_large", f"body over {limit} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    problem = _verify(body, headers)
    if problem:
        # 503 only when the receiver itself is misconfigured (no secret): the sender should retry later.
        status = {"missing_headers": 400, "no_secret_configured": 503}.get(problem, 401)
        return _reject(status, problem, problem.replace("_", " "))
    try:
        payload = WebhookPayload.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _reject(422, "bad_body", f"{where}: {first['msg']}")
    wid = headers["webhook-id"][:100]
    store = get_store()
    try:
        with store.session() as s:
            s.add(WebhookDelivery(webhook_id=wid, event=payload.event.value,
                                  payload=payload.model_dump(mode="json"), state="pending"))
    except IntegrityError:
        # The unique webhook_id refused it: a retry of a delivery already stored. 2xx, no effect.
        _count("duplicate")
        bump(store, "duplicate")
        return jsonify({"ok": True, "duplicate": True, "webhook_id": wid}), 200
    _count("accepted")
    if current_app.config.get("WEBHOOKS_PROCESS_INLINE", _settings().webhooks.process_inline):
        # After the commit: a failure here leaves the delivery pending for the next process_pending run.
        from creditbridge.webhooks.processing import process_pending
        try:
            process_pending(store, _settings(), webhook_ids=[wid])
        except Exception:
            log.exception("inline processing of %s failed; it stays pending", wid)
    return jsonify({"ok": True, "duplicate": False, "webhook_id": wid}), 202


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    with _METRICS_LOCK:
        metrics = dict(current_app.extensions["creditbridge_metrics"])
    try:
        with get_store().session() as s:
            pending = s.scalar(select(func.count()).select_from(WebhookDelivery)
                               .where(WebhookDelivery.state == "pending"))
    except Exception as e:
        log.warning("store unreachable: %s", type(e).__name__)
        return jsonify({"ok": False, "store": "unreachable", "outcomes": metrics}), 503
    return jsonify({"ok": True, "pending": pending, "outcomes": metrics}), 200


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory. Config keys: SETTINGS (a Settings), CONFIG_PATH, DATABASE_URL, WEBHOOK_SECRETS (list),
    WEBHOOKS_PROCESS_INLINE (default True)."""
    app = Flask(__name__)
    cfg = dict(test_config or {})
    settings: Settings = cfg.pop("SETTINGS", None) or load_settings(cfg.get("CONFIG_PATH"))
    app.config.update(cfg)
    app.config.setdefault("DATABASE_URL", settings.database.url)
    secrets = app.config.get("WEBHOOK_SECRETS") or [s.get_secret_value() for s in settings.webhooks.secrets]
    app.extensions["creditbridge_settings"] = settings
    app.extensions["creditbridge_verifiers"] = [Webhook(s) for s in secrets if s]
    app.extensions["creditbridge_metrics"] = Counter()
    app.register_blueprint(bp)

    @app.errorhandler(400)
    def _bad_request(e: Exception) -> tuple[Any, int]:
        return jsonify({"ok": False, "reason": "bad_request", "detail": "malformed request"}), 400

    return app


def close_app(app: Flask) -> None:
    """Dispose the app's store (tests and the serve command call this when done)."""
    store = app.extensions.pop("creditbridge_store", None)
    if store is not None:
        store.dispose()
