"""Schema upgrades through alembic. Imported only when a store's schema is not at SCHEMA_HEADS (store/db.py):
alembic, mako and the migration scripts cost about 0.2 s of CPU, paid otherwise by every CLI command."""

from __future__ import annotations

import time
from importlib import resources

from alembic import command
from alembic.config import Config

from creditbridge.store.db import SCHEMA_HEADS, Store, schema_revisions
from creditbridge.store.locks import migration_lock_for

# How long a process opening a store waits for another one's schema upgrade before upgrading anyway.
LOCK_WAIT_SECONDS = 600.0


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("creditbridge.store.migrations")))
    # ConfigParser interpolation would choke on '%' in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    # "heads": each flow keeps its own migration branch off 0001_core, so there may be several heads.
    command.upgrade(alembic_config(url), revision)


def upgrade_to_heads(store: Store) -> None:
    """Bring the store to SCHEMA_HEADS under the store's migration lock. Processes opening a fresh store at once
    (two scheduler instances, a command beside them) wait for the first one's upgrade, then find the schema at
    the heads and run nothing: without the lock each ran alembic, and all but one failed on a table the first
    made. A lock that cannot be had (a lock file that cannot be created, a wait past LOCK_WAIT_SECONDS) leaves
    alembic to run as it did before."""
    lock = migration_lock_for(store)
    held = False
    if lock is not None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        try:
            while not (held := lock.acquire()) and time.monotonic() < deadline:
                if getattr(lock, "last_error", None):  # the database stopped answering: alembic says so
                    break
                time.sleep(0.1)
        except OSError:
            held = False
    try:
        if not held or schema_revisions(store.engine) != SCHEMA_HEADS:
            upgrade(store.url)  # on its own engine and connection
    finally:
        if lock is not None and held:
            lock.release()
