"""Receiver outcome counters kept in the store, so `intake status` sees every worker's counts.

Refused requests are not written one by one: each worker counts them in memory (`PendingCounts`) and adds them to
the store in one transaction every `webhooks.counter_flush_seconds` and when it stops, so a flood of junk costs
no database write per request. A worker killed with SIGKILL loses at most one interval of these counts; the
deliveries themselves are never in this buffer (a stored delivery is committed before its answer).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Executable, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from creditbridge.store import Store
from creditbridge.store.models.intake import IntakeCounter

log = logging.getLogger(__name__)

# Counted outcomes of processing, not of receiving: deliveries stored and acknowledged that make no learning
# record (e.g. a course-total grade). Not rejections.
NOT_CREDITABLE_PREFIX = "not_creditable_"


def bump_statement(store: Store, reason: str, by: int = 1) -> Executable:
    """The upsert adding `by` to a reason's count; run it inside another transaction to count atomically."""
    return _upsert(store.is_postgres, reason, by)


def bump_in(s: Session, reason: str, by: int = 1) -> None:
    """Count inside the caller's transaction, so the count commits or rolls back with what it counts."""
    s.execute(_upsert(s.get_bind().dialect.name == "postgresql", reason, by))


def _upsert(postgres: bool, reason: str, by: int) -> Executable:
    insert = pg_insert if postgres else sqlite_insert
    stmt = insert(IntakeCounter).values(reason=reason, count=by)
    return stmt.on_conflict_do_update(index_elements=["reason"], set_={"count": IntakeCounter.count + by})


def split_outcomes(counters: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(rejections by reason, not-creditable deliveries by reason) out of all counters; accepted and duplicate
    are neither."""
    rejected = {k: v for k, v in counters.items()
                if k not in ("duplicate", "accepted") and not k.startswith(NOT_CREDITABLE_PREFIX)}
    not_creditable = {k.removeprefix(NOT_CREDITABLE_PREFIX): v for k, v in counters.items()
                      if k.startswith(NOT_CREDITABLE_PREFIX)}
    return rejected, not_creditable


def bump(store: Store, reason: str, by: int = 1) -> None:
    with store.session() as s:
        s.execute(bump_statement(store, reason, by))


def bump_many(store: Store, counts: dict[str, int]) -> None:
    """Add several reasons' counts in one transaction. In reason order, so two workers flushing at once lock the
    counter rows in the same order and wait for each other instead of deadlocking."""
    with store.session() as s:
        for reason in sorted(counts):
            s.execute(bump_statement(store, reason, counts[reason]))


def read_all(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {r: c for r, c in s.execute(select(IntakeCounter.reason, IntakeCounter.count))}


class PendingCounts:
    """One worker's counts not yet in the store, flushed by a timer thread (a greenlet under gevent) started on
    the first count, i.e. in the worker after the fork. The store is asked for only when there is something to
    write, so refusing requests does not even open it."""

    def __init__(self, store: Callable[[], Store], interval: float) -> None:
        self._store, self.interval = store, interval
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="creditbridge-counters", daemon=True)
                self._thread.start()
                # gunicorn workers leave through sys.exit on a graceful stop: the last interval's counts go too.
                atexit.register(self.close)

    @property
    def unflushed(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def flush(self) -> bool:
        """Add what was counted since the last flush to the store. On failure the counts are kept for the next
        flush (nothing counted twice, nothing lost while the worker lives). True if nothing is left over."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return True
        try:
            bump_many(self._store(), dict(counts))
        except Exception as e:  # a counter must never stop the worker; kept for the next try
            log.warning("could not flush %d refused-request counts: %s: %s", sum(counts.values()),
                        type(e).__name__, str(e).strip().split("\n", 1)[0][:200])
            with self._lock:
                self._counts.update(counts)
            return False
        return True

    def close(self) -> bool:
        """Stop the timer and flush what is left (a worker stopping: gunicorn's graceful exit, close_app)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)  # wakes at once; bounded in case a flush hangs on the database
        return self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
