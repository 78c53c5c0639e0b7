"""Locks on a state store: the one home of "only one of these at a time on this store".

Three users: the scheduler's leader lock (one active scheduler per store); `flow_lock`, a lock per flow
(sync, push, credits evaluate) so that a second run of the same flow on the same store never runs beside
the first one; and `job_lock_for`, the lock a scheduled job's run holds while it runs, so that a run still
going under a scheduler that lost the leader lock is told from a dead one (scheduling/runs.py).

- PostgreSQL: a session-level advisory lock on a connection of its own, held while the holder runs.
  PostgreSQL drops it when that session ends, including when the process is killed. Advisory locks are
  per database, which is exactly "per store".
- SQLite: an fcntl (flock) lock on a file next to the database file; the kernel drops it when the process
  dies. A SQLite store cannot be shared across hosts anyway.

Each holder leaves a label (what runs, its pid and host, since when): in the lock file, or as the
lock connection's `application_name`, so a refused second run can say who holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, make_url

from creditbridge import CreditbridgeError
from creditbridge.store.db import Store

log = logging.getLogger(__name__)

# PostgreSQL truncates application_name to 63 bytes.
_APP_NAME_BYTES = 63
_LABEL_PREFIX = "creditbridge "


class Lock(Protocol):
    def acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...

    def describe(self) -> str: ...


def lock_key(name: str) -> int:
    """A fixed advisory-lock key for a name, the same in every instance and version. Positive (63 bits), so
    its halves read back from pg_locks (classid, objid: unsigned oids) compare without sign trouble."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


# A session-level advisory lock on a bigint key shows in pg_locks as objsubid 1 with the key's halves.
_HELD_HERE = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid AND pid = pg_backend_pid()")
# Advisory locks belong to one database, but pg_locks shows the whole server's: another store on the same
# server holding the same key is not this store's holder.
_HOLDER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = (:k >> 32)::oid AND l.objid = (:k & 4294967295)::oid")


class PostgresLock:
    """A session-level advisory lock on a connection of its own, held while its holder runs. PostgreSQL
    drops it when that session ends, including when the process is killed, so a standby can take over.
    `label` (optional) becomes the holding session's application_name, for `holder()`."""

    def __init__(self, engine: Engine, key: int, label: str | None = None) -> None:
        self.engine, self.key, self.label = engine, key, label
        self._conn: Connection | None = None
        self._held = False
        self.last_error: str | None = None  # why the last acquire() could not even ask

    def acquire(self) -> bool:
        self.last_error = None
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._held = bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            if self._held and self.label:
                self._conn.execute(text("SELECT set_config('application_name', :v, false)"),
                                   {"v": self.label.encode()[:_APP_NAME_BYTES].decode(errors="ignore")})
        except Exception as e:  # the database is unreachable: not acquired; the caller decides what follows
            log.warning("lock %s: database unreachable (%s)", self.key, type(e).__name__)
            self.last_error = type(e).__name__
            self._close()
            return False
        return self._held

    def still_held(self) -> bool:
        if self._conn is None or not self._held:
            return False
        try:
            n = self._conn.execute(_HELD_HERE, {"k": self.key}).scalar()
        except Exception:
            return False
        return bool(n)

    def holder(self) -> str | None:
        """The label of the session holding the lock (None when unknown or free)."""
        try:
            with self.engine.connect() as c:
                return c.execute(_HOLDER, {"k": self.key}).scalar() or None
        except Exception:
            return None

    def release(self) -> None:
        if self._conn is not None and self._held:
            unlocked = False
            with contextlib.suppress(Exception):
                unlocked = bool(self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key}).scalar())
            if not unlocked:
                # The session may still hold the lock: back in the pool it would keep it from everyone, this
                # process included. Ending the session is the one sure way to drop a session-level lock.
                with contextlib.suppress(Exception):
                    self._conn.invalidate()
            elif self.label:
                with contextlib.suppress(Exception):
                    self._conn.execute(text("RESET application_name"))  # the connection goes back to the pool
        self._held = False
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"


class FileLock:
    """An fcntl lock on a file (next to the SQLite database): one holder per host. The kernel releases it
    when the process dies. The holder writes `label` (default host:pid) into the file, for `holder()`."""

    def __init__(self, path: Path, label: str | None = None) -> None:
        self.path = path
        self.label = label
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.label or host_pid()}\n".encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        if self._fd is None:
            return False
        try:
            # Someone deleting the file would let another process lock a new one under the same name.
            return os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except OSError:
            return False

    def holder(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip() or None
        except OSError:
            return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def describe(self) -> str:
        return f"lock file {self.path}"


def host_pid() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sqlite_lock_path(store: Store, suffix: str) -> Path:
    """`<database file><suffix>` next to the database (a temp-dir file for an in-memory database)."""
    database = make_url(store.url).database
    if not database or database == ":memory:":
        return Path(tempfile.gettempdir()) / f"creditbridge{suffix}"
    return Path(database + suffix)


# --- a lock per flow -----------------------------------------------------------------------------------


class FlowBusy(CreditbridgeError):
    """Another run of the same flow holds the flow's lock on this store."""


_held = threading.local()  # flows this thread holds per store: nested calls (a job calling a flow) re-enter


def _label(command: str) -> str:
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{_LABEL_PREFIX}{command}|{os.getpid()}|{socket.gethostname()}|{since}"


def describe_holder(label: str | None) -> tuple[str, str]:
    """(`"sync roster"`, `since 2026-12-06 08:53:26 UTC, pid 4242 on host`) from a holder's label."""
    if not label or not label.startswith(_LABEL_PREFIX):
        return "run of this flow", "holder unknown"
    parts = [*label[len(_LABEL_PREFIX):].split("|"), "", "", ""]
    command, pid, host, since = parts[:4]
    since = since.replace("T", " ").replace("Z", " UTC") or "?"
    return f'"{command}"', f"since {since}, pid {pid or '?'}{' on ' + host if host else ''}"


def _named_lock(store: Store, name: str, file_suffix: str, command: str) -> PostgresLock | FileLock | None:
    """The store's lock called `name` (the advisory-lock key's name; on SQLite the file `<database><file_suffix>`),
    labelled with `command`. None for an in-memory SQLite store: no other process can reach it."""
    label = _label(command)
    if store.is_postgres:
        return PostgresLock(store.engine, lock_key(name), label)
    database = make_url(store.url).database
    if not database or database == ":memory:":
        return None
    return FileLock(sqlite_lock_path(store, file_suffix), label)


def flow_lock_for(store: Store, flow: str, command: str) -> PostgresLock | FileLock | None:
    """The lock of `flow` on this store (None for an in-memory SQLite store: no other process can reach it)."""
    return _named_lock(store, f"creditbridge.flow.{flow}", f".{flow}.lock", command)


def job_lock_for(store: Store, job_id: str, command: str) -> PostgresLock | FileLock | None:
    """The lock of the scheduler job `job_id` on this store: held by a scheduled run from its claim until its
    outcome is recorded. Free while a `running` row of the job is in the ledger means that run's process died
    (PostgreSQL drops the lock with the session, the kernel the lock file's with the process)."""
    return _named_lock(store, f"creditbridge.job.{job_id}", f".job-{job_id}.lock", command)


def migration_lock_for(store: Store) -> PostgresLock | FileLock | None:
    """The lock a schema upgrade holds (store/migrate.py): processes opening a fresh store at once would each run
    alembic, and all but one fail on the tables the first one made. On SQLite its file is in the temporary
    directory, named after the database's path, not beside the database: an upgrade happens once per store and
    version, and the store's directory keeps only what the operator and the flows put there."""
    label = _label("schema upgrade")
    if store.is_postgres:
        return PostgresLock(store.engine, lock_key("creditbridge.migrate"), label)
    database = make_url(store.url).database
    if not database or database == ":memory:":
        return None
    name = hashlib.sha256(os.path.abspath(database).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"creditbridge-migrate-{name}.lock", label)


def _try(lock: PostgresLock | FileLock, flow: str, command: str) -> bool:
    lock.label = _label(command)  # "since" is when this run got the lock, not when it began to wait
    try:
        return lock.acquire()
    except OSError as e:  # the lock file cannot be created or opened (permissions, read-only directory)
        raise CreditbridgeError(f"cannot take the {flow} lock ({lock.describe()}): {e.strerror or e}") from None


@contextlib.contextmanager
def flow_lock(store: Store, flow: str, command: str, *, wait: bool = False,
              poll_seconds: float = 0.5, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock of `flow` ("sync", "push", "evaluate") on this store while the block runs.

    Busy: raises FlowBusy naming the run that holds it (`command` is how this run is called, for the message),
    or with `wait`, polls until it is free (logging once, as a warning, whom it waits for; `on_wait` is called
    once before, to let go of what the run would hold while it waits). A nested call from the same thread for
    the same store and flow re-enters."""
    held: set[tuple[str, str]] = getattr(_held, "flows", None) or set()
    _held.flows = held
    key = (store.url, flow)
    if key in held:
        yield
        return
    lock = flow_lock_for(store, flow, command)
    if lock is None:
        yield
        return
    told = False
    while not _try(lock, flow, command):
        unreachable = getattr(lock, "last_error", None)  # only a PostgreSQL lock can fail to ask
        if unreachable:
            raise CreditbridgeError(f"cannot take the {flow} lock: the database is unreachable ({unreachable})")
        who, detail = describe_holder(lock.holder())
        if not wait:
            raise FlowBusy(f"another {who} is running on this store ({detail}); run \"{command}\" again when "
                           "it has finished, or add --wait")
        if not told:
            if on_wait is not None:
                on_wait()
            log.warning("waiting for another %s to finish (%s)", who, detail)
            told = True
        time.sleep(poll_seconds)
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        lock.release()
