"""open_store's fast path: a store whose alembic_version holds exactly SCHEMA_HEADS is opened without alembic;
every other store is upgraded by alembic as before (the reference), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, inspect, text

from creditbridge.store import migrate
from creditbridge.store.db import SCHEMA_HEADS, StoreError, make_engine, open_store, schema_revisions
from creditbridge.store.migrate import alembic_config, upgrade
from creditbridge.store.models import Base


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = create_engine(db_url)
    try:
        yield e
    finally:
        e.dispose()


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs open_store ran alembic's upgrade on (it still runs: this only records)."""
    calls: list[str] = []
    real = migrate.upgrade

    def recording(url: str, revision: str = "heads") -> None:
        calls.append(url)
        real(url, revision)

    monkeypatch.setattr(migrate, "upgrade", recording)
    return calls


def _revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_schema_heads_are_alembics_heads(sqlite_url: str) -> None:
    heads = set(ScriptDirectory.from_config(alembic_config(sqlite_url)).get_heads())
    assert set(SCHEMA_HEADS) == heads, (
        f"store/db.py SCHEMA_HEADS is {sorted(SCHEMA_HEADS)} but the migrations' heads are {sorted(heads)}: "
        "a new migration must replace its down_revision in SCHEMA_HEADS with its own revision (a new branch "
        "adds one); otherwise every command runs alembic, or a store missing the new migration opens unmigrated")


def test_a_fresh_store_is_migrated(db_url: str, engine: Engine, upgrades: list[str]) -> None:
    open_store(db_url).dispose()
    assert upgrades == [db_url]
    assert _revisions(engine) == SCHEMA_HEADS
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_a_store_at_0006_is_upgraded(db_url: str, engine: Engine, upgrades: list[str]) -> None:
    upgrade(db_url, "0006_scheduler")
    assert "scheduler_jobstore" in inspect(engine).get_table_names()
    store = open_store(db_url)
    try:
        assert upgrades == [db_url]
        assert _revisions(engine) == SCHEMA_HEADS
        assert "scheduler_jobstore" not in inspect(engine).get_table_names()
        with store.session() as s:  # the store's own engine sees the upgraded schema
            assert s.execute(text("SELECT count(*) FROM scheduler_job_run")).scalar_one() == 0
    finally:
        store.dispose()


def test_a_store_at_the_heads_is_opened_without_alembic(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(db_url).dispose()

    def refuse(url: str, revision: str = "heads") -> None:
        raise AssertionError("alembic ran on a store already at SCHEMA_HEADS")

    monkeypatch.setattr(migrate, "upgrade", refuse)
    store = open_store(db_url)
    try:
        with store.session() as s:
            assert s.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == len(SCHEMA_HEADS)
    finally:
        store.dispose()
    open_store(db_url, migrate=False).dispose()


def test_opening_a_store_at_the_heads_imports_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).dispose()
    code = ("import sys\nfrom creditbridge.store.db import open_store\n"
            f"open_store({url!r}).dispose()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_store_one_branch_behind_is_upgraded(db_url: str, engine: Engine, upgrades: list[str]) -> None:
    open_store(db_url).dispose()
    command.downgrade(alembic_config(db_url), "0006_scheduler")  # the scheduler branch back one step
    assert _revisions(engine) == SCHEMA_HEADS - {"0010_scheduler_drop_jobstore"} | {"0006_scheduler"}
    upgrades.clear()
    open_store(db_url).dispose()
    assert upgrades == [db_url]
    assert _revisions(engine) == SCHEMA_HEADS
    assert "scheduler_jobstore" not in inspect(engine).get_table_names()


def test_an_empty_version_table_is_upgraded(db_url: str, engine: Engine, upgrades: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
    open_store(db_url).dispose()
    assert upgrades == [db_url]
    assert _revisions(engine) == SCHEMA_HEADS


def _reference_error(url: str) -> BaseException:
    """What alembic's upgrade raises on this store: open_store raised it (or its StoreError) before the fast path."""
    try:
        upgrade(url)
    except Exception as e:
        return e
    raise AssertionError("alembic upgraded the store")


def _assert_fails_as_the_reference(url: str) -> None:
    expected = _reference_error(url)
    with pytest.raises(Exception) as got:  # whatever the reference raised: compared below
        open_store(url)
    error = got.value
    if isinstance(error, StoreError):  # open_store words an OperationalError, as before
        assert str(error).startswith(f"cannot open the state store {url}: ")
        error = error.__cause__
    assert (type(error), str(error)) == (type(expected), str(expected))


@pytest.mark.parametrize("change", [
    "INSERT INTO alembic_version VALUES ('0011_future')",  # a newer code's migration on top
    "UPDATE alembic_version SET version_num = '0011_future' WHERE version_num = '0002_sync'",
])
def test_a_store_newer_than_the_code_fails_as_before(db_url: str, engine: Engine, change: str) -> None:
    open_store(db_url).dispose()
    with engine.begin() as conn:
        conn.execute(text(change))
    with pytest.raises(CommandError, match="Can't locate revision identified by '0011_future'"):
        open_store(db_url)
    _assert_fails_as_the_reference(db_url)


def test_an_unreadable_version_table_fails_as_before(db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (revision INTEGER)"))
    store_engine = make_engine(db_url)
    try:
        assert schema_revisions(store_engine) is None
        with store_engine.connect() as conn:  # the pool holds no connection the failed SELECT broke
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        store_engine.dispose()
    _assert_fails_as_the_reference(db_url)


def test_a_missing_version_table_leaves_the_pool_usable(db_url: str) -> None:
    store_engine = make_engine(db_url)
    try:
        assert schema_revisions(store_engine) == frozenset()
        with store_engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        store_engine.dispose()


def test_a_database_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no such directory' / 'state.db'}"
    with pytest.raises(StoreError, match=r"^cannot open the state store .*: unable to open database file$"):
        open_store(url)
