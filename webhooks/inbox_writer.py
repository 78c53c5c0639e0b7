"""Group commit for the webhook inbox: the deliveries that reach one worker together share one INSERT and commit.

A request thread validates its delivery and calls `InboxWriter.store_delivery`, which returns only after the
commit that holds the row. Inside, at most one thread per worker writes at a time (the *writer*); rows that
arrive meanwhile wait in a queue. When a write ends, the writer wakes each request of its batch with its answer
and hands the writer role to the oldest waiting request, which takes every row waiting (up to `max_batch`) and
stores them with one multi-row `INSERT … ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id` in one
transaction. A request arriving while nothing is being written writes its own row at once: there is no
timer and no linger, and batches grow only with the load (they hold what arrived during the previous commit).

Under gunicorn's gevent workers (the default) the request threads are greenlets and the locks gevent's: the same
code, and the writer's wait for the database lets the worker's other requests run and queue up meanwhile.

Why the role moves between request threads instead of living in a dedicated writer thread: a waiting request
has to be woken anyway, and waking it as the next writer saves the two thread switches per batch a dedicated
thread costs (wake the writer, and the writer's own wake-up); under gunicorn's gthread workers every switch is
a GIL hand-over, so the dedicated thread measured ~10% more CPU per delivery (docs/webhooks.md, Benchmark).

Failures: a connection the server dropped is replaced and the batch (idempotent) written again once. Any other
error rolls the whole batch back (nothing half-written) and its rows are written one by one, so a row the
database refuses fails only its own request; when the database cannot be reached at all every request of the
batch fails. A failed request gets `InboxWriteError` and answers 503: nothing is acknowledged that is not
committed, and the sender retries until it gets a 2xx.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from psycopg import Error as PgError
from psycopg import OperationalError as PgOperationalError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from creditbridge import CreditbridgeError
from creditbridge.store import Store
from creditbridge.store.models.base import utcnow

log = logging.getLogger(__name__)


class InboxWriteError(CreditbridgeError):
    """The delivery could not be stored (the database refused its row or could not be reached). Retry is safe:
    nothing of it was acknowledged, and the insert dedupes by webhook id."""


@dataclass(slots=True, eq=False)
class _Waiting:
    """One request's row, its outcome, and the lock its thread sleeps on until someone has news for it."""

    webhook_id: str
    event: str
    payload_json: str
    received_at: datetime
    stored: bool = False
    error: BaseException | None = None
    # Set (before `wake` is released) when this request is to write the next batch rather than read its answer.
    writes_next: bool = False
    # Held from the moment the row is queued; released once, by the thread that has its answer or hands it the
    # writer role. A bare lock is the cheapest wake-up there is.
    wake: Any = field(default_factory=lambda: threading.Lock())  # looked up per call: gevent may patch it


class InboxWriter:
    """One per worker process, shared by its request threads (create it after the fork): see the module doc."""

    def __init__(self, store: Store, max_batch: int = 64) -> None:
        self.store, self.max_batch = store, max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._writing = False
        self._closed = False
        # Held by whichever thread is the writer (the `_writing` flag makes it exclusive), kept across batches:
        # no pool checkout, reset and, on PostgreSQL, autocommit switch per batch.
        self._conn: PoolProxiedConnection | None = None
        # Batches and deliveries written by this worker (mean batch size = deliveries / batches), for /healthz.
        self.batches = 0
        self.deliveries = 0

    def store_delivery(self, webhook_id: str, event: str, payload_json: str) -> bool:
        """Store one delivery; True if it is new, False if that webhook id was already stored. Returns only
        after the commit that holds the row. Raises InboxWriteError when it could not be stored."""
        item = _Waiting(webhook_id, event, payload_json, utcnow())
        item.wake.acquire()
        with self._lock:
            if self._closed:
                raise InboxWriteError("the receiver is shutting down")
            self._queue.append(item)
            write = not self._writing
            self._writing = True
        if not write:
            item.wake.acquire()  # until a writer has stored our row or hands us the writer role
            write = item.writes_next
        if write:
            self._write_next(item)
        if item.error is not None:
            raise InboxWriteError(_describe(item.error)) from item.error
        return item.stored

    @property
    def writing(self) -> bool:
        """A batch is being written right now."""
        return self._writing

    @property
    def queued(self) -> int:
        """Deliveries waiting for the batch being written to end (they make the next batch)."""
        return len(self._queue)

    def close(self) -> None:
        """Refuse further deliveries and give the writer's connection back to the pool once no batch is being
        written (the requests of a stopping worker have all been answered by then)."""
        with self._lock:
            self._closed = True
            if self._writing:
                return  # the writer gives it back when it is done
            conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn)

    # --- the writer role ----------------------------------------------------------------------------------------

    def _write_next(self, me: _Waiting) -> None:
        """Write the oldest waiting rows (ours among them), answer their requests, pass the role on."""
        with self._lock:
            batch = self._queue[:self.max_batch]
            del self._queue[:self.max_batch]
        try:
            self._write_batch(batch)
        except BaseException as e:  # whatever happened, every request of the batch gets an answer
            for item in batch:
                if item.error is None:
                    item.error = e
            if not isinstance(e, Exception):
                raise  # an interpreter exit goes on, after the others are woken (finally)
        finally:
            for item in batch:
                if item is not me:
                    item.wake.release()
            idle_conn = None
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.writes_next = True
                    nxt.wake.release()
                else:
                    self._writing = False
                    if self._closed:
                        idle_conn, self._conn = self._conn, None
            if idle_conn is not None:
                self._release(idle_conn)

    def _write_batch(self, batch: list[_Waiting]) -> None:
        # The first of several requests carrying one webhook id (a sender's retry racing its original) owns
        # the row; the others are duplicates whatever becomes of it.
        owners: dict[str, _Waiting] = {}
        for item in batch:
            owners.setdefault(item.webhook_id, item)
        rows = list(owners.values())
        try:
            new = self._write(rows, len(batch))
        except Exception as e:
            if len(rows) == 1 or _unreachable(e):
                log.error("storing %d deliveries failed: %s", len(batch), _describe(e))
                for item in batch:
                    item.error = e
                return
            # The whole batch was rolled back; one by one, a row the database refuses fails only its requests.
            log.warning("a batch of %d deliveries was refused (%s); storing them one by one", len(rows),
                        _describe(e))
            new = set()
            for row in rows:
                same = [item for item in batch if item.webhook_id == row.webhook_id]
                try:
                    new |= self._write([row], len(same))
                except Exception as one:
                    log.error("storing delivery %s failed: %s", row.webhook_id, _describe(one))
                    for item in same:
                        item.error = one
        for item in batch:
            item.stored = owners[item.webhook_id] is item and item.webhook_id in new
        self.batches += 1
        self.deliveries += len(batch)

    def _write(self, rows: list[_Waiting], deliveries: int) -> set[str]:
        """One transaction storing `rows` (distinct webhook ids) and counting as duplicates the `deliveries`
        that stored nothing; the ids that were new. A dropped connection is replaced and the (idempotent) write
        tried once more."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                if self.store.is_postgres:
                    return _write_pg(conn.dbapi_connection, rows, deliveries)
                return _write_sqlite(conn, rows, deliveries)
            except Exception as e:
                # No ping before each batch (a round trip): a connection the server dropped (restart, idle
                # timeout) fails here once, is thrown away, and the batch goes again on a fresh one.
                # Any exception may be asked about: each dialect checks the exception's class itself.
                broken = self.store.engine.dialect.is_disconnect(cast(Any, e), conn.dbapi_connection, None)
                if broken or not isinstance(e, (sqlite3.Error, PgError)):
                    # broken, or in a state we cannot vouch for: never reuse it
                    self._conn = None
                    conn.invalidate(e)
                    conn.close()
                if attempt == 2 or not broken:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> PoolProxiedConnection:
        if self._conn is None:
            conn = self.store.engine.raw_connection()
            if self.store.is_postgres:
                # Each batch is one statement: autocommit makes it one round trip (no BEGIN/COMMIT), and the
                # statement returns only after its commit is flushed.
                # A fresh raw connection always holds its psycopg connection (the stub allows a closed one's None).
                cast(Any, conn.dbapi_connection).autocommit = True
            self._conn = conn
        return self._conn

    def _release(self, conn: PoolProxiedConnection) -> None:
        try:
            if self.store.is_postgres and conn.dbapi_connection is not None:
                # back to the transactional mode every other user of the pool expects
                conn.dbapi_connection.autocommit = False
        finally:
            conn.close()


def _write_pg(dbapi: Any, rows: list[_Waiting], deliveries: int) -> set[str]:
    # One statement in autocommit: a single round trip that inserts, counts the duplicates and commits. Arrays
    # keep its text fixed whatever the batch size, so it is prepared once; bound in binary (%b), so the JSON
    # texts are not escaped into an array literal. ORDER BY: two workers' batches take the unique index entries
    # in the same order, so they wait for each other instead of deadlocking.
    params = ([r.webhook_id for r in rows], [r.event for r in rows], [r.payload_json for r in rows],
              [r.received_at for r in rows], deliveries)
    cur = dbapi.cursor()
    try:
        cur.execute(_PG_STORE, params)
        return {wid for (wid,) in cur.fetchall()}
    finally:
        cur.close()


def _write_sqlite(conn: Any, rows: list[_Waiting], deliveries: int) -> set[str]:
    # No round trips to save on SQLite, but one transaction (one write lock, one WAL append) per batch.
    params: list[Any] = []
    for r in rows:
        params += (r.webhook_id, r.event, r.payload_json, r.received_at.strftime(_SQLITE_TIME))
    cur = conn.cursor()
    try:
        cur.execute(_sqlite_store(len(rows)), params)
        new = {wid for (wid,) in cur.fetchall()}
        if deliveries > len(new):
            cur.execute(_BUMP_DUPLICATES, (deliveries - len(new),))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()
    return new


def _unreachable(e: BaseException) -> bool:
    """The database itself (not one row) is the problem: no point in trying each row on its own."""
    return isinstance(_dbapi_error(e), (PgOperationalError, sqlite3.OperationalError))


def _dbapi_error(e: BaseException) -> BaseException:
    # The pool wraps an error while connecting in SQLAlchemy's own class; the driver's is inside.
    return e.orig if isinstance(e, DBAPIError) and e.orig is not None else e


def _describe(e: BaseException) -> str:
    # The first line only: PostgreSQL's DETAIL/CONTEXT lines may quote the payload, which holds ID numbers.
    e = _dbapi_error(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


# SQLAlchemy's SQLite DateTime text format, so rows written here read back like any other.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_BUMP_DUPLICATES = ("INSERT INTO intake_counter (reason, count) VALUES ('duplicate', ?) "
                    "ON CONFLICT (reason) DO UPDATE SET count = intake_counter.count + excluded.count")


@lru_cache(maxsize=64)
def _sqlite_store(n: int) -> str:
    # Only placeholders are repeated into the text; the values travel as parameters.
    return ("INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) VALUES "  # noqa: S608
            + ", ".join(["(?, ?, ?, 'pending', ?)"] * n)
            + " ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id")


_PG_STORE = (
    "WITH ins AS (INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) "
    "SELECT w, e, p::json, 'pending', r FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[]) "
    "AS t(w, e, p, r) ORDER BY w "
    "ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id), "
    "dup AS (INSERT INTO intake_counter (reason, count) "
    "SELECT 'duplicate', d.n FROM (SELECT %s::int - (SELECT count(*) FROM ins) AS n) AS d WHERE d.n > 0 "
    "ON CONFLICT (reason) DO UPDATE SET count = intake_counter.count + excluded.count) "
    "SELECT webhook_id FROM ins")
