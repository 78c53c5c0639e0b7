"""Issue #14 item 11: two `sync roster` at once on one store. The second stops at once with a clear
`error:` (exit 2) naming the run that holds the store, or with --wait runs after it; `sync runs` shows the
teachers created once; no traceback. Real subprocesses against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cli_process import finish, first_stderr_line, gated, run_cli, start_cli, wait_until
from sqlalchemy import func, select
from sync_helpers import make_env, people, write_roster

from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.sync import SyncRun


def _running_runs(db_url: str) -> int:
    store = open_store(db_url)
    try:
        with store.session() as s:
            return s.scalar(select(func.count()).select_from(SyncRun).where(
                SyncRun.outcome == "running", SyncRun.dry_run.is_(False))) or 0
    finally:
        store.dispose()


def test_second_sync_roster_exits_at_once_and_a_waiting_one_runs_after(tmp_path: Path, sandbox_server: Any,
                                                                       db_url: str) -> None:
    env = make_env(tmp_path, sandbox_server, db_url)
    roster = write_roster(tmp_path / "roster.csv", people(24))
    run_cli(env.config, "sync", "runs", env=env.env)  # creates the store, so both runs meet a migrated one
    gate = gated(sandbox_server.app)  # the first run is held at its first Moodle call, holding the store

    first = start_cli(env.config, "sync", "roster", str(roster), "--json", env=env.env)
    try:
        wait_until(lambda: _running_runs(db_url) == 1, what="the first run holding the store")
        second = run_cli(env.config, "sync", "roster", str(roster), "--json", env=env.env, timeout=30)
        waiting = start_cli(env.config, "sync", "catalog", str(tmp_path / "missing.csv"), "--wait", env=env.env)
        told = first_stderr_line(waiting)
        gate.set()
        first_done = finish(first)
    finally:
        gate.set()
        if first.poll() is None:
            first.kill()
    assert first_done.code == 0, first_done.output
    assert json.loads(first_done.stdout)["created"] == 24

    assert second.code == 2, second.output
    assert second.stdout == ""
    assert re.fullmatch(
        r'error: another "sync roster" is running on this store \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, '
        rf'pid {first.pid} on [^)]+\); run "sync roster" again when it has finished, or add --wait\n',
        second.stderr), second.stderr
    assert second.seconds < 15  # it did not wait

    # --wait: the catalog run (same lock: every sync flow enrols into the same courses) waited, then ran
    assert re.search(r'waiting for another "sync roster" to finish \(since .* UTC, pid \d+', told), told
    waited = finish(waiting)
    assert waited.code == 2 and "missing.csv: no such file" in waited.stderr, waited.output
    assert "Traceback" not in first_done.output + second.output + waited.output

    runs = json.loads(run_cli(env.config, "sync", "runs", "--json", env=env.env).stdout)
    applied = [r for r in runs if r["kind"] == "roster"]
    assert len(applied) == 1 and applied[0]["outcome"] == "ok" and applied[0]["counts"]["created"] == 24
    store = open_store(db_url)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Teacher)) == 24
    finally:
        store.dispose()


def test_sync_roster_with_wait_runs_after_the_other_and_creates_nobody_twice(tmp_path: Path, sandbox_server: Any,
                                                                             db_url: str) -> None:
    env = make_env(tmp_path, sandbox_server, db_url)
    roster = write_roster(tmp_path / "roster.csv", people(16))
    run_cli(env.config, "sync", "runs", env=env.env)
    gate = gated(sandbox_server.app)
    first = start_cli(env.config, "sync", "roster", str(roster), "--json", env=env.env)
    try:
        wait_until(lambda: _running_runs(db_url) == 1, what="the first run holding the store")
        waiting = start_cli(env.config, "sync", "roster", str(roster), "--json", "--wait", env=env.env)
        told = first_stderr_line(waiting)
        gate.set()
        first_done = finish(first)
        second = finish(waiting)
    finally:
        gate.set()
        if first.poll() is None:
            first.kill()
    assert first_done.code == 0 and second.code == 0, first_done.output + second.output
    assert re.search(r'waiting for another "sync roster" to finish \(since .* UTC, pid \d+', told), told
    a, b = json.loads(first_done.stdout), json.loads(second.stdout)
    assert (a["created"], b["created"], b["unchanged"], b["lms_calls"]) == (16, 0, 16, 0)
    assert "Traceback" not in first_done.output + second.output + told
