"""The receiver's resources, one set per Flask app, each opened on first use and closed by `close`.

Like flaskr's db.py they live on the app and are opened lazily, so each gunicorn worker builds its own database
pool, group-commit writer and background thread after the fork. Unlike it they are reached from the app object,
not from `g`/`current_app`: the delivery endpoint (webhooks/endpoint.py) runs without Flask's request context.
"""

from __future__ import annotations

import atexit
import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from flask import Flask

from creditbridge.metrics import count_delivery
from creditbridge.settings import Settings
from creditbridge.store import Store, open_store
from creditbridge.webhooks.background import BackgroundProcessor
from creditbridge.webhooks.counters import PendingCounts
from creditbridge.webhooks.inbox_writer import InboxWriter

# Created when this module is first imported, which under gunicorn's gevent workers is after the monkey-patching
# (the app is loaded in the worker), so it is then a gevent lock like every other lock of the worker.
_LOCK = threading.Lock()

_STORE, _WRITER, _BACKGROUND = "creditbridge_store", "creditbridge_inbox_writer", "creditbridge_background"
_METRICS, _SETTINGS, _PENDING = "creditbridge_metrics", "creditbridge_settings", "creditbridge_pending_counts"
# Outcomes not added to intake_counter by `count`: accepted deliveries are rows of the inbox, duplicates are
# counted by the group commit in the same statement that finds them, store errors are this worker's own trouble.
_NOT_PERSISTED = frozenset({"accepted", "duplicate", "store_error"})
T = TypeVar("T")


def install(app: Flask, settings: Settings) -> None:
    """Called by create_app: the settings and an empty set of outcome counters."""
    app.extensions[_SETTINGS] = settings
    app.extensions[_METRICS] = Counter()
    app.extensions[_PENDING] = PendingCounts(lambda: store(app), settings.webhooks.counter_flush_seconds)


def settings(app: Flask) -> Settings:
    return app.extensions[_SETTINGS]


def store(app: Flask) -> Store:
    """One Store per app (its engine pools connections across requests)."""
    found = app.extensions.get(_STORE)
    if found is None:
        with _LOCK:
            found = app.extensions.get(_STORE)
            if found is None:
                # One pooled connection per request thread; `serve` has migrated already (STORE_MIGRATE false).
                threads = settings(app).webhooks.threads
                found = open_store(app.config["DATABASE_URL"], migrate=app.config.get("STORE_MIGRATE", True),
                                   pool_size=max(5, threads), max_overflow=threads, pool_pre_ping=False)
                app.extensions[_STORE] = found
    return found


def writer(app: Flask) -> InboxWriter:
    """This worker's group commit (webhooks/inbox_writer.py)."""
    return _once(app, _WRITER, lambda opened: InboxWriter(opened, max_batch=settings(app).webhooks.store_batch))


def writer_if_open(app: Flask) -> InboxWriter | None:
    return app.extensions.get(_WRITER)


def background(app: Flask) -> BackgroundProcessor:
    """This worker's background processor (webhooks.inline_mode = "background")."""
    def make(opened: Store) -> BackgroundProcessor:
        conf = settings(app)
        made = BackgroundProcessor(opened, conf, conf.webhooks.background_queue)
        # gunicorn workers leave through sys.exit on a graceful stop: finish the queue first.
        atexit.register(made.drain, 10.0)
        return made
    return _once(app, _BACKGROUND, make)


def background_if_started(app: Flask) -> BackgroundProcessor | None:
    return app.extensions.get(_BACKGROUND)


def _once(app: Flask, key: str, make: Callable[[Store], T]) -> T:
    """app.extensions[key], made from the store on first use by whichever request gets there first."""
    found = app.extensions.get(key)
    if found is None:
        opened = store(app)
        with _LOCK:
            found = app.extensions.get(key)
            if found is None:
                found = app.extensions[key] = make(opened)
    return found


def count(app: Flask, outcome: str) -> None:
    """Count one answer: in this worker's outcomes (/healthz and /metrics) and, for refusals, towards
    intake_counter (the next flush, not a write per request)."""
    with _LOCK:
        app.extensions[_METRICS][outcome] += 1
    count_delivery(outcome)  # creditbridge_webhook_deliveries_total, the same count for Prometheus (metrics.py)
    if outcome not in _NOT_PERSISTED:
        app.extensions[_PENDING].add(outcome)


def pending_counts(app: Flask) -> PendingCounts:
    """This worker's counts of refused requests not yet in the store."""
    return app.extensions[_PENDING]


def outcomes(app: Flask) -> dict[str, int]:
    with _LOCK:
        return dict(app.extensions[_METRICS])


def close(app: Flask) -> None:
    """Stop the writer, drain the background queue, flush the counts, dispose the store (in that order: each uses
    the next)."""
    found_writer = app.extensions.pop(_WRITER, None)
    if found_writer is not None:
        found_writer.close()
    found_background = app.extensions.pop(_BACKGROUND, None)
    if found_background is not None:
        found_background.drain()
    app.extensions[_PENDING].close()
    found_store = app.extensions.pop(_STORE, None)
    if found_store is not None:
        found_store.dispose()
