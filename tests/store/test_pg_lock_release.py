"""A PostgreSQL advisory lock whose unlock fails is not left held by a pooled connection (hostile review of
#17): PostgresLock.release() swallowed the failed `pg_advisory_unlock` and handed its connection back to the
pool, still holding the session-level lock. Every later scheduler or flow lock of that key, in this process
(on another pooled connection) and in every other, was refused until the pool happened to close it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from creditbridge.store.locks import PostgresLock, lock_key

KEY = lock_key("hostile2.release")


def _free_elsewhere(url: str) -> bool:
    other = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with other.connect() as c:
            got = bool(c.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": KEY}).scalar())
            if got:
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": KEY})
            return got
    finally:
        other.dispose()


def test_a_failed_unlock_does_not_leave_the_lock_in_the_pool(pg_url: str) -> None:
    engine = create_engine(pg_url)
    failing = {"unlock": True}

    @event.listens_for(engine, "before_cursor_execute")
    def _unlock_fails(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The session survives (a cancelled statement, a network hiccup the driver recovered from).
        if "pg_advisory_unlock" in statement and failing["unlock"]:
            raise OperationalError(statement, None, Exception("canceling statement due to user request"))

    try:
        lock = PostgresLock(engine, KEY)
        assert lock.acquire()
        assert not _free_elsewhere(pg_url)
        lock.release()
        failing["unlock"] = False
        assert _free_elsewhere(pg_url), "the lock stayed held by a connection back in the pool"
        again = PostgresLock(engine, KEY)
        assert again.acquire(), "this process could not take its own lock again"
        again.release()
    finally:
        engine.dispose()


def test_a_normal_release_frees_the_lock(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        lock = PostgresLock(engine, KEY)
        assert lock.acquire()
        lock.release()
        assert _free_elsewhere(pg_url)
    finally:
        engine.dispose()
