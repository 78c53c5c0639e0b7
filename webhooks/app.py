"""The webhook receiver: size limit, signature on the raw bytes, schema, then one durable, deduping insert.

Order matters (as in PyPI's warehouse): nothing is parsed before the signature is checked, and the
2xx goes out only after the inbox row is committed, so an acknowledged delivery survives any crash.
"""

from __future__ import annotations

import atexit
import binascii
import logging
import queue
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.base import utcnow
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
    if not _store_delivery(store, wid, payload):
        # The unique webhook_id refused it: a retry of a delivery already stored. 2xx, no effect.
        _count("duplicate")
        return jsonify({"ok": True, "duplicate": True, "webhook_id": wid}), 200
    _count("accepted")
    webhooks = _settings().webhooks
    if current_app.config.get("WEBHOOKS_PROCESS_INLINE", webhooks.process_inline):
        mode = current_app.config.get("WEBHOOKS_INLINE_MODE", webhooks.inline_mode)
        if mode == "background":
            _background(current_app).submit(wid)
        else:
            _process_now(store, wid)
    return jsonify({"ok": True, "duplicate": False, "webhook_id": wid}), 202


def _store_delivery(store: Store, wid: str, payload: WebhookPayload) -> bool:
    """One transaction: the insert that stores the delivery is the insert that dedupes it (ON CONFLICT DO
    NOTHING on the unique webhook_id); a duplicate is counted in the same transaction. True if stored.

    This is the receiver's hot path. It speaks to the pooled DBAPI connection directly with fixed SQL,
    skipping SQLAlchemy's per-statement machinery. On PostgreSQL it is a single statement in autocommit
    (insert and duplicate count joined in one WITH): one round trip instead of BEGIN, INSERT, COMMIT, and
    still durable, since the statement returns only after its commit is flushed.
    """
    now = utcnow()
    for attempt in (1, 2):
        conn = store.engine.raw_connection()
        try:
            if store.is_postgres:
                return _store_pg(conn, (wid, payload.event.value, payload.model_dump_json(), now))
            return _store_sqlite(conn, (wid, payload.event.value, payload.model_dump_json(),
                                        now.strftime(_SQLITE_TIME)))
        except Exception as e:
            # The pool does not ping before each checkout (that is a round trip per delivery): a connection
            # the server dropped (restart, idle timeout) fails here once, is thrown away, and the idempotent
            # insert is tried again on a fresh one.
            broken = store.engine.dialect.is_disconnect(e, conn.dbapi_connection, None)
            if broken:
                conn.invalidate(e)
            if attempt == 2 or not broken:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def _store_pg(conn: Any, row: tuple[Any, ...]) -> bool:
    dbapi = conn.dbapi_connection
    dbapi.autocommit = True
    try:
        cur = dbapi.cursor()
        cur.execute(_PG_STORE, row)
        stored = cur.fetchone() is not None
        cur.close()
        return stored
    finally:
        # back to the transactional mode every other user of the pool expects
        dbapi.autocommit = False


def _store_sqlite(conn: Any, row: tuple[Any, ...]) -> bool:
    # SQLite has no round trips to save and no data-modifying WITH: two statements, one transaction.
    cur = conn.cursor()
    cur.execute(_SQLITE_STORE, row)
    stored = cur.fetchone() is not None
    if not stored:
        cur.execute(_BUMP_DUPLICATE)
    cur.close()
    conn.commit()
    return stored


# SQLAlchemy's SQLite DateTime text format, so rows written here read back like any other.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_BUMP_DUPLICATE = ("INSERT INTO intake_counter (reason, count) VALUES ('duplicate', 1) "
                   "ON CONFLICT (reason) DO UPDATE SET count = intake_counter.count + 1")
_SQLITE_STORE = ("INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) "
                 "VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (webhook_id) DO NOTHING RETURNING id")
_PG_STORE = ("WITH ins AS (INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) "
             "VALUES (%s, %s, %s::json, 'pending', %s) ON CONFLICT (webhook_id) DO NOTHING RETURNING id), "
             "dup AS (INSERT INTO intake_counter (reason, count) SELECT 'duplicate', 1 "
             "WHERE NOT EXISTS (SELECT 1 FROM ins) "
             "ON CONFLICT (reason) DO UPDATE SET count = intake_counter.count + 1) "
             "SELECT id FROM ins")


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
    return jsonify({"ok": True, "pending": pending, "outcomes": metrics}), 200


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
    background = app.extensions.pop("creditbridge_background", None)
    if background is not None:
        background.drain()
    store = app.extensions.pop("creditbridge_store", None)
    if store is not None:
        store.dispose()
