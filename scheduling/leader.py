"""One active scheduler per state store: the leader lock, and who holds it.

The lock classes are store/locks.py's (the one home of store locks; flows use them too): on PostgreSQL a
session-level advisory lock on a connection kept while the scheduler runs, on SQLite an fcntl lock file.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from creditbridge.scheduling.cron import SchedulerError
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.locks import FileLock, Lock, PostgresLock, lock_key, sqlite_lock_path

# Advisory-lock key, fixed so every instance of every version asks for the same lock.
LOCK_KEY = lock_key("creditbridge.scheduler")

LeaderLock = Lock


def instance_name() -> str:
    """How the ledger and the logs name this scheduler (or this operator's `--once`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lock_file_path(settings: Settings, store: Store) -> Path:
    if settings.scheduler.lock_file:
        return Path(settings.scheduler.lock_file)
    return sqlite_lock_path(store, ".scheduler.lock")


def leader_lock(settings: Settings, store: Store) -> LeaderLock:
    if store.is_postgres:
        return PostgresLock(store.engine, LOCK_KEY)
    if store.engine.dialect.name == "sqlite":
        return FileLock(lock_file_path(settings, store))
    raise SchedulerError(f"the scheduler needs PostgreSQL or SQLite, not {store.engine.dialect.name}")


def lock_holder(settings: Settings, store: Store) -> str | None:
    """Who runs the schedule now: a description of the lock when held by someone, None when free."""
    lock = leader_lock(settings, store)
    if lock.acquire():
        lock.release()
        return None
    if isinstance(lock, FileLock):
        with contextlib.suppress(OSError):
            return f"{lock.path.read_text(encoding='utf-8').strip() or 'unknown'} ({lock.describe()})"
    return lock.describe()
