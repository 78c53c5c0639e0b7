"""Waiting, in a test, until another session is blocked on a PostgreSQL row lock."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, text


def wait_for_lock_waiter(url: str, what: str, timeout: float = 60.0) -> None:
    """Return once some session of `url`'s database waits on a lock; fail naming `what` after `timeout` s."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as c:
                waiting = c.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND wait_event_type = 'Lock'"))
            if waiting:
                return
            assert time.monotonic() < deadline, f"{what} never reached the contested INSERT"
            time.sleep(0.05)
    finally:
        engine.dispose()
