"""Engine, sessions and schema upgrades for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from creditbridge import CreditbridgeError
from creditbridge.store.migrate import upgrade


class StoreError(CreditbridgeError):
    """The state store cannot be opened: a malformed database.url, or a database that does not answer."""


def safe_url(url: str) -> str:
    """The URL for messages and logs: the password hidden, an unparsable URL not repeated at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable URL)"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the webhook receiver write while a report reads; busy_timeout rides out short locks
    # instead of failing a delivery with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _create_private_file(url: str) -> None:
    """Create a SQLite store's file 0600 before SQLite does (it would use 0644 under umask 022): it holds
    ID numbers. SQLite gives its -wal, -shm and -journal files the database file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # Already there: its mode is the operator's. Not creatable: SQLite says why when it tries.
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str, **kwargs: Any) -> Engine:
    # SQL parameters stay out of every error and log line: they hold ID numbers (the statement is kept).
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _create_private_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@dataclass
class Store:
    """One engine and its session factory; open it once per process."""

    url: str = field(repr=False)  # may hold the database password
    engine: Engine = field(repr=False)
    sessions: sessionmaker[Session] = field(repr=False)

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on any error."""
        with self.sessions.begin() as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def open_store(url: str, migrate: bool = True, **engine_kwargs: Any) -> Store:
    """Open the store at `url`, bringing its schema up to date first unless told not to."""
    try:
        if migrate:
            upgrade(url)
        engine = make_engine(url, **engine_kwargs)
    except ArgumentError as e:
        raise StoreError(f"database.url {safe_url(url)} is not a database URL SQLAlchemy can open ({e})") from e
    except OperationalError as e:
        reason = str(e.orig or e).strip().splitlines()[0]
        raise StoreError(f"cannot open the state store {safe_url(url)}: {reason}") from e
    return Store(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
