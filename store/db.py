"""Engine, sessions and the schema check for SQLite (embedded) and PostgreSQL (production); alembic's upgrades are
in store/migrate.py, loaded only for a store not at SCHEMA_HEADS."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from creditbridge import CreditbridgeError
from creditbridge.store.models import Base

# The heads of store/migrations/versions: each flow keeps its own migration branch off 0001_core. A store whose
# alembic_version holds exactly these is opened without importing alembic (see open_store). A new migration
# must replace its parent here (tests/store/test_schema_heads.py checks this against alembic's own view).
SCHEMA_HEADS = frozenset({
    "0002_sync",
    "0003_intake",
    "0005_registry",
    "0009_credit_mark_notify",
    "0010_scheduler_drop_jobstore",
})


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


def schema_revisions(engine: Engine) -> frozenset[str] | None:
    """The revisions in the store's alembic_version table: empty if it has none or no such table, None if
    they cannot be read. Errors connecting are raised (open_store turns them into a StoreError)."""
    with engine.connect() as conn:
        try:
            # Checked first: on PostgreSQL a SELECT on a missing table would abort the transaction.
            if not inspect(conn).has_table("alembic_version"):
                return frozenset()
            return frozenset(str(v) for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except SQLAlchemyError:  # an odd table: alembic, run as before, says what is wrong with it
            return None  # leaving the block rolls the connection back before the pool takes it again


def missing_tables(engine: Engine) -> list[str]:
    """The models' tables the store lacks (a store at the heads whose tables were dropped by hand)."""
    with engine.connect() as conn:
        return sorted(set(Base.metadata.tables) - set(inspect(conn).get_table_names()))


def open_store(url: str, migrate: bool = True, **engine_kwargs: Any) -> Store:
    """Open the store at `url`, bringing its schema up to date first unless told not to. A store already at
    SCHEMA_HEADS (every command but the first) is opened without alembic; any other (no table, older, newer,
    unreadable) is upgraded by alembic exactly as before, errors included."""
    try:
        engine = make_engine(url, **engine_kwargs)
        store = Store(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
        try:
            if migrate and schema_revisions(engine) != SCHEMA_HEADS:
                from creditbridge.store.migrate import (  # noqa: PLC0415 - start-up time: alembic, ~0.2 s CPU
                    upgrade_to_heads,
                )

                upgrade_to_heads(store)
                engine.dispose()  # no pooled connection from before the upgrade
            if migrate and (missing := missing_tables(engine)):
                # alembic would not look either: the first command would die on the table, far from the cause.
                raise StoreError(f"the state store {safe_url(url)} is at the current schema version but lacks the "
                                 f"table(s) {', '.join(missing)} (dropped by hand?): restore it from a backup, or "
                                 "start a new store")
        except BaseException:
            engine.dispose()
            raise
    except ArgumentError as e:
        raise StoreError(f"database.url {safe_url(url)} is not a database URL SQLAlchemy can open ({e})") from e
    except OperationalError as e:
        reason = str(e.orig or e).strip().splitlines()[0]
        raise StoreError(f"cannot open the state store {safe_url(url)}: {reason}") from e
    return store
