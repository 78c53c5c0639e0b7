"""Shared fixtures: state stores on SQLite and on the real PostgreSQL, settings, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from creditbridge.store import Store, open_store

PG_ADMIN_URL = os.environ.get("CREDITBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as e:  # any failure to connect means "no PostgreSQL here"
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server's URL. Fails in CI when it cannot be reached; skips on a laptop."""
    problem = _pg_reachable()
    if problem:
        msg = f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)}: {problem}"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg + " (set CREDITBRIDGE_TEST_POSTGRES_URL, or run in CI)")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"cb_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the embedded SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


class SandboxServer:
    """A running sandbox LMS (in memory) for one test: `.url`, `.token` (the admin's), `.app` (Flask),
    `.state` (creditbridge.sandbox.state.SandboxState: add activities, criteria, completions, tokens)."""

    def __init__(self, app: Any, state: Any, url: str, token: str) -> None:
        self.app, self.state, self.url, self.token = app, state, url, token


@pytest.fixture
def sandbox_server() -> Iterator[SandboxServer]:
    from creditbridge.sandbox.app import create_app, state_of
    from creditbridge.sandbox.server import serve_in_thread

    token = uuid.uuid4().hex
    app = create_app({"SANDBOX_TOKEN": token, "SANDBOX_DB": ":memory:"})
    handle = serve_in_thread(app)
    try:
        yield SandboxServer(app, state_of(app), handle.url, token)
    finally:
        handle.stop()
        state_of(app).close()


# Text a spreadsheet program would run as a formula if written as is (OWASP CSV injection; issue #14 item 5).
FORMULA_TEXTS = ("=1+1", '=HYPERLINK("http://x","y")', "+1", "-1", "@SUM(1)", "\t=1", "\r=1")


@pytest.fixture
def formula_texts() -> tuple[str, ...]:
    return FORMULA_TEXTS


@pytest.fixture
def creditbridge_cli(tmp_path: Path) -> Any:
    """Run `python -m creditbridge.cli.main ARGS` as a person would, in tmp_path, with the given extra
    environment (CREDITBRIDGE_DATABASE_URL defaults to a SQLite file in tmp_path): CompletedProcess[str]."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        # Only the settings the test gives: not a CREDITBRIDGE_CONFIG of the shell that runs the tests.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
        full_env = {**inherited, "CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", **env}
        return subprocess.run([sys.executable, "-m", "creditbridge.cli.main", *args], capture_output=True, text=True,
                              env=full_env, cwd=tmp_path, timeout=120)

    return run
