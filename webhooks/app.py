"""The webhook receiver: size limit, signature on the raw bytes, schema, then one durable, deduping insert.

Order matters (as in PyPI's warehouse): nothing is parsed before the signature is checked, and the
2xx goes out only after the inbox row is committed, so an acknowledged delivery survives any crash. The
insert is grouped: the deliveries that reach one worker together share one INSERT and one commit
(webhooks/inbox_writer.py), each still answered only after the commit that holds its row.
"""

from __future__ import annotations

import atexit
import binascii
import json
import logging
import queue
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from creditbridge.settings import Settings, load_settings
from creditbridge.settings.model import WebhookSettings
from creditbridge.store import Store, open_store
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.counters import bump
from creditbridge.webhooks.inbox_writer import InboxWriteError, InboxWriter
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
                # Lazily, so each gunicorn worker builds its own engine and pool after the fork. One pooled
                # connection per request thread; `serve` has migrated already (STORE_MIGRATE false).
                threads = _settings().webhooks.threads
                store = open_store(current_app.config["DATABASE_URL"],
                                   migrate=current_app.config.get("STORE_MIGRATE", True),
                                   pool_size=max(5, threads), max_overflow=threads, pool_pre_ping=False)
                ext["creditbridge_store"] = store
    g.store = store
    return store


def _count(reason: str) -> None:
    with _METRICS_LOCK:
        current_app.extensions["creditbridge_metrics"][reason] += 1


def _reject(status: int, reason: str, detail: str) -> Response:
    _count(reason)
    try:
        bump(get_store(), reason)
    except Exception:  # a counter must never turn a 4xx into a 5xx
        log.exception("could not count %s", reason)
    return _json({"ok": False, "reason": reason, "detail": detail}, status)


def _verify(app: Flask, body: bytes, headers: dict[str, str]) -> str | None:
    """None if some configured secret signed this body; otherwise the reason code."""
    if not all(headers.values()):
        return "missing_headers"
    # Built once per app (create_app), not per request.
    verifiers: list[Webhook] = app.extensions["creditbridge_verifiers"]
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
def receive() -> Response:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not ten
    webhooks: WebhookSettings = app.extensions["creditbridge_settings"].webhooks
    limit = webhooks.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(413, "too_large", f"body over {limit} bytes")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _reject(413, "too_large", f"body over {limit} bytes")
    # Only the signed headers matter (the library asks for nothing else), looked up case-insensitively.
    get = request.headers.get
    headers = {h: get(h, "") for h in _SIGNED_HEADERS}
    problem = _verify(app, body, headers)
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
    try:
        stored = _writer(app).store_delivery(wid, payload.event.value, payload.model_dump_json())
    except InboxWriteError:
        # Not acknowledged, so the sender retries; the writer has logged why (without the payload).
        _count("store_error")
        return _json({"ok": False, "reason": "store_error", "detail": "the delivery could not be stored"}, 503)
    if not stored:
        # The unique webhook_id refused it: a retry of a delivery already stored. 2xx, no effect.
        _count("duplicate")
        return _json({"ok": True, "duplicate": True, "webhook_id": wid}, 200)
    _count("accepted")
    if app.config.get("WEBHOOKS_PROCESS_INLINE", webhooks.process_inline):
        mode = app.config.get("WEBHOOKS_INLINE_MODE", webhooks.inline_mode)
        if mode == "background":
            _background(app).submit(wid)
        else:
            _process_now(get_store(), wid)
    return _json({"ok": True, "duplicate": False, "webhook_id": wid}, 202)


_SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _json(doc: dict[str, Any], status: int) -> Response:
    # What jsonify makes, without its provider lookups: this is on every delivery's path.
    return Response(json.dumps(doc, separators=(",", ":")), status, mimetype="application/json")


def _writer(app: Flask) -> InboxWriter:
    """This worker's group commit (webhooks/inbox_writer.py), made on first use, i.e. after the fork."""
    writer = app.extensions.get("creditbridge_inbox_writer")
    if writer is None:
        store = get_store()
        with _METRICS_LOCK:
            writer = app.extensions.get("creditbridge_inbox_writer")
            if writer is None:
                webhooks: WebhookSettings = app.extensions["creditbridge_settings"].webhooks
                writer = InboxWriter(store, max_batch=webhooks.store_batch)
                app.extensions["creditbridge_inbox_writer"] = writer
    return writer


def _process_now(store: Store, wid: str) -> None:
    # After the commit: a failure here leaves the delivery pending for the next process_pending run.
    from creditbridge.webhooks.processing import process_pending
    try:
        process_pending(store, _settings(), webhook_ids=[wid])
    except Exception:
        log.exception("inline processing of %s failed; it stays pending", wid)


class BackgroundProcessor:
    """Per-worker thread that turns deliveries into learning records after their answer went out.

    Durable without a queue of its own: the inbox row is committed before the id is queued, so whatever
    this thread has not done when the worker dies (or when the queue is full) stays pending for
    `intake replay` / the scheduler. Started lazily, i.e. in the gunicorn worker after the fork.
    """

    def __init__(self, store: Store, settings: Settings, maxsize: int, batch: int = 100) -> None:
        self.store, self.settings, self.batch = store, settings, batch
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize)
        self.thread: threading.Thread | None = None
        self.skipped = 0
        self._lock = threading.Lock()

    def submit(self, wid: str) -> bool:
        """Queue one delivery; False (it stays pending) when the queue is full."""
        if self.thread is None:
            with self._lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="creditbridge-intake", daemon=True)
                    self.thread.start()
        try:
            self.queue.put_nowait(wid)
        except queue.Full:
            self.skipped += 1
            return False
        return True

    def _run(self) -> None:
        from creditbridge.webhooks.processing import process_pending
        while True:
            first = self.queue.get()
            ids = [] if first is None else [first]
            stop = first is None
            while not stop and len(ids) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                else:
                    ids.append(nxt)
            try:
                if ids:
                    process_pending(self.store, self.settings, webhook_ids=ids)
            except Exception:
                log.exception("background processing of %d deliveries failed; they stay pending", len(ids))
            finally:
                for _ in range(len(ids) + (1 if stop else 0)):
                    self.queue.task_done()
            if stop:
                return

    def drain(self, timeout: float = 30.0) -> bool:
        """Finish what is queued and stop the thread. True if it finished within the timeout."""
        if self.thread is None:
            return True
        self.queue.put(None)
        self.thread.join(timeout)
        done = not self.thread.is_alive()
        self.thread = None
        return done


def _background(app: Flask) -> BackgroundProcessor:
    proc = app.extensions.get("creditbridge_background")
    if proc is None:
        with _METRICS_LOCK:
            proc = app.extensions.get("creditbridge_background")
            if proc is None:
                settings: Settings = app.extensions["creditbridge_settings"]
                proc = BackgroundProcessor(get_store(), settings, settings.webhooks.background_queue)
                app.extensions["creditbridge_background"] = proc
                # gunicorn workers leave through sys.exit on a graceful stop: finish the queue first.
                atexit.register(proc.drain, 10.0)
    return proc


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
    writer: InboxWriter | None = current_app.extensions.get("creditbridge_inbox_writer")
    # This worker's group commit: deliveries / batches is its mean batch size.
    batches = {"batches": writer.batches if writer else 0, "deliveries": writer.deliveries if writer else 0}
    return jsonify({"ok": True, "pending": pending, "outcomes": metrics, "store_batches": batches}), 200


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
    writer = app.extensions.pop("creditbridge_inbox_writer", None)
    if writer is not None:
        writer.close()
    background = app.extensions.pop("creditbridge_background", None)
    if background is not None:
        background.drain()
    store = app.extensions.pop("creditbridge_store", None)
    if store is not None:
        store.dispose()
