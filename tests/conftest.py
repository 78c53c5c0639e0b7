"""Shared fixtures: state stores on SQLite and on the real PostgreSQL, settings, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from creditbridge.records.id_number import find_id_numbers, mask_id_number, mask_id_numbers
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
def runner(request: pytest.FixtureRequest) -> CliRunner:
    """A CliRunner whose every result's output is checked for full ID numbers (see id_number_leaks)."""
    return _CheckedCliRunner(request.node.nodeid)


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


# --- No full ID number in any output of the suite -------------------------------------------------------------
# Tests may feed full ID numbers in; what creditbridge prints or logs must hold them masked. Every test's
# captured stdout/stderr/log and failure text, and every output of the `runner` fixture's CLI runs, is searched;
# a hit fails the session and names the test with the number masked. Output a test reads from a subprocess it
# started is that test's to check (tests/webhooks/test_id_numbers_in_failures.py does).
ID_NUMBER_LEAKS: list[tuple[str, str, list[str]]] = []  # (test id, where, masked numbers)


def id_number_leaks(nodeid: str, sections: Iterable[tuple[str, str]]) -> list[tuple[str, str, list[str]]]:
    """(test, section, masked numbers) for each section of text holding a full ID number."""
    found = []
    for where, content in sections:
        numbers = find_id_numbers(content or "")
        if numbers:
            # `where` may quote a command line, which may hold a full number as input: masked too
            found.append((nodeid, mask_id_numbers(where), sorted({mask_id_number(n) for n in numbers})))
    return found


def _record_leaks(found: list[tuple[str, str, list[str]]]) -> None:
    # A test's sections are repeated in its later phases' reports: each (test, section) once.
    ID_NUMBER_LEAKS.extend(f for f in found if f not in ID_NUMBER_LEAKS)


class _CheckedCliRunner(CliRunner):
    def __init__(self, nodeid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodeid = nodeid

    def invoke(self, *args: Any, **kwargs: Any) -> Result:
        result = super().invoke(*args, **kwargs)
        command = " ".join(str(a) for a in (args[1] if len(args) > 1 else kwargs.get("args") or []))
        _record_leaks(id_number_leaks(self.nodeid, [(f"CLI output of `{command}`", result.output)]))
        return result


_real_subprocess_run = subprocess.run


def _checked_subprocess_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run, with the output of a creditbridge command a test ran searched too (the test reads it
    from the result, so pytest never captures it)."""
    proc = _real_subprocess_run(*args, **kwargs)
    argv = args[0] if args else kwargs.get("args", [])
    command = " ".join(str(a) for a in argv) if isinstance(argv, list | tuple) else str(argv)
    if "creditbridge" in command:
        nodeid = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
        texts = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in (proc.stdout, proc.stderr)]
        where = "output of `" + command.split("creditbridge.cli.main", 1)[-1].strip()[:120] + "`"
        _record_leaks(id_number_leaks(nodeid, [(where, t) for t in texts if isinstance(t, str)]))
    return proc


subprocess.run = _checked_subprocess_run  # type: ignore[assignment]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    sections = list(report.sections)
    if report.failed:
        sections.append((f"failure text ({report.when})", report.longreprtext))
    _record_leaks(id_number_leaks(report.nodeid, sections))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ID_NUMBER_LEAKS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ID_NUMBER_LEAKS:
        return
    terminalreporter.section("full ID numbers in test output", sep="=", red=True, bold=True)
    for nodeid, where, numbers in ID_NUMBER_LEAKS:
        terminalreporter.line(f"{nodeid}: {where}: {', '.join(numbers)}", red=True)
