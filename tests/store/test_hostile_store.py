"""Hostile tests of open_store's SCHEMA_HEADS fast path: odd alembic_version tables, read-only and hand-edited
stores, concurrent first opens, a version table in another schema on PostgreSQL's search path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from creditbridge.store import migrate
from creditbridge.store.db import SCHEMA_HEADS, StoreError, make_engine, open_store, schema_revisions
from creditbridge.store.migrate import upgrade

HEADS = ",".join(f"('{h}')" for h in sorted(SCHEMA_HEADS))


def _run(url: str, *sql: str) -> None:
    e = create_engine(url)
    try:
        with e.begin() as conn:
            for s in sql:
                conn.execute(text(s))
    finally:
        e.dispose()


def _outcome(fn: object) -> tuple[str, str]:
    try:
        fn()  # type: ignore[operator]
    except Exception as e:  # compared with the reference below
        cause = e.__cause__ if isinstance(e, StoreError) and e.__cause__ is not None else e
        return type(cause).__name__, str(cause).splitlines()[0]
    return "ok", ""


ODD_VERSION_TABLES = {
    "each head twice (no primary key)": [
        "DROP TABLE alembic_version", "CREATE TABLE alembic_version (version_num VARCHAR(32))",
        f"INSERT INTO alembic_version VALUES {HEADS}", f"INSERT INTO alembic_version VALUES {HEADS}"],
    "the heads and a NULL": [
        "DROP TABLE alembic_version", "CREATE TABLE alembic_version (version_num VARCHAR(32))",
        f"INSERT INTO alembic_version VALUES {HEADS}", "INSERT INTO alembic_version VALUES (NULL)"],
    "an extra column": ["ALTER TABLE alembic_version ADD COLUMN note VARCHAR(10) DEFAULT 'x'"],
    "a view": ["CREATE TABLE av_real AS SELECT version_num FROM alembic_version", "DROP TABLE alembic_version",
               "CREATE VIEW alembic_version AS SELECT version_num FROM av_real"],
    "heads with a trailing space": ["UPDATE alembic_version SET version_num = version_num || ' '"],
    "an integer column": ["DROP TABLE alembic_version", "CREATE TABLE alembic_version (version_num INTEGER)",
                          "INSERT INTO alembic_version VALUES (2)"],
}


@pytest.mark.parametrize("case", list(ODD_VERSION_TABLES))
def test_odd_version_tables_open_as_alembic_would(db_url: str, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(db_url).dispose()
    _run(db_url, *ODD_VERSION_TABLES[case])
    reference = _outcome(lambda: upgrade(db_url))
    ran: list[str] = []
    real = migrate.upgrade
    monkeypatch.setattr(migrate, "upgrade", lambda url, revision="heads": (ran.append(url), real(url, revision)))
    got = _outcome(lambda: open_store(db_url).dispose())
    assert got == reference, (case, ran)


def test_a_read_only_sqlite_store_at_the_heads_opens_and_a_fresh_one_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_store(f"sqlite:///{path}").dispose()
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert _outcome(lambda: open_store(ro).dispose()) == _outcome(lambda: upgrade(ro)) == ("ok", "")
    fresh = tmp_path / "fresh.db"
    fresh.touch()
    with pytest.raises(StoreError, match="attempt to write a readonly database"):
        open_store(f"sqlite:///file:{fresh}?mode=ro&uri=true")


def test_a_store_at_the_heads_missing_a_table_is_a_store_error(db_url: str) -> None:
    """Found by the hostile review: such a store opened silently, and the first command died with a raw
    traceback ('no such table: teacher'). Now open_store names the table."""
    open_store(db_url).dispose()
    _run(db_url, "DROP TABLE teacher")
    with pytest.raises(StoreError, match="teacher"):
        open_store(db_url).dispose()


def test_schema_revisions_of_a_big_version_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).dispose()
    _run(url, "DROP TABLE alembic_version", "CREATE TABLE alembic_version (version_num VARCHAR(32))",
         f"INSERT INTO alembic_version VALUES {HEADS}",
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
         "INSERT INTO alembic_version SELECT '0002_sync' FROM n")
    e = make_engine(url)
    try:
        assert schema_revisions(e) == SCHEMA_HEADS  # every row read (no DISTINCT), still the heads
    finally:
        e.dispose()


def _open_at_once(url: str, n: int = 6) -> list[tuple[int, str]]:
    code = f"from creditbridge.store.db import open_store\nopen_store({url!r}).dispose()\n"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        lines = [line for line in err.splitlines() if "Error" in line]
        out.append((p.returncode, lines[-1] if lines else ""))
    return out


def test_processes_opening_a_fresh_store_at_once_all_succeed(db_url: str) -> None:
    """Found by the hostile review: processes opening a fresh store at once each ran alembic, and on PostgreSQL
    all but one died with a raw IntegrityError (5 runs of 5). The migration lock (store/migrate.py) makes the
    others wait and then find the schema at the heads."""
    results = _open_at_once(db_url)
    assert results == [(0, "")] * len(results)


@pytest.mark.postgres
def test_postgres_version_table_in_another_schema_on_the_search_path(pg_url: str, pg_admin_url: str) -> None:
    open_store(pg_url).dispose()
    _run(pg_url, "CREATE SCHEMA other", "ALTER TABLE alembic_version SET SCHEMA other")
    name = make_url(pg_url).database
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        for path in ("public, other", "other, public"):
            with admin.connect() as c:
                c.execute(text(f'ALTER DATABASE "{name}" SET search_path = {path}'))
            e = make_engine(pg_url)
            try:
                assert schema_revisions(e) == SCHEMA_HEADS, path
            finally:
                e.dispose()
            assert _outcome(lambda: open_store(pg_url).dispose()) == _outcome(lambda: upgrade(pg_url)) == ("ok", "")
        # not on the search path at all: no version table seen, alembic runs and fails as it did before
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" SET search_path = public'))
        assert _outcome(lambda: open_store(pg_url).dispose()) == _outcome(lambda: upgrade(pg_url))
    finally:
        admin.dispose()
