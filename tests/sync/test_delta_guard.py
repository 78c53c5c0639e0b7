"""Issue #14 item 10: a delta roster that marks every teacher 离职 is held back like a truncated full export.

Driven as it was found: the real CLI in a subprocess against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_process import run_cli
from sqlalchemy import select
from sync_helpers import client_for, make_env, people, sandbox_users, write_roster

from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.sync.plan import load_known_teachers


def test_delta_with_every_teacher_left_is_held_until_forced(tmp_path: Path, sandbox_server: Any,
                                                           db_url: str) -> None:
    env = make_env(tmp_path, sandbox_server, db_url)
    staff = people(30)
    first = run_cli(env.config, "sync", "roster", str(write_roster(tmp_path / "full.csv", staff)), "--json",
                    env=env.env)
    assert first.code == 0, first.output
    assert json.loads(first.stdout)["created"] == 30

    all_left = write_roster(tmp_path / "delta.csv", [p.moved(status="离职") for p in staff])
    held = run_cli(env.config, "sync", "roster", str(all_left), "--delta", env=env.env)
    assert held.code == 0, held.output
    assert "held 30" in held.stdout and "suspended" not in held.stdout  # counts of 0 are not shown
    assert "30 suspension(s) held back" in held.stderr and "--force" in held.stderr
    assert "Traceback" not in held.output

    store = open_store(db_url)
    try:
        known = load_known_teachers(store.engine, env.settings.sync.programme)
        usernames = _usernames(store)
    finally:
        store.dispose()
    assert known.active_count == 30
    client = client_for(sandbox_server)
    assert not any(u["suspended"] for u in sandbox_users(client, usernames).values())

    # A small delta (3 of 30 = 10%, not more than the share) goes through without --force.
    few = write_roster(tmp_path / "few.csv", [p.moved(status="离职") for p in staff[:3]])
    small = json.loads(run_cli(env.config, "sync", "roster", str(few), "--delta", "--json", env=env.env).stdout)
    assert (small["suspended"], small["held"]) == (3, 0)

    forced = run_cli(env.config, "sync", "roster", str(all_left), "--delta", "--force", "--json", env=env.env)
    assert forced.code == 0, forced.output
    doc = json.loads(forced.stdout)
    assert (doc["suspended"], doc["held"]) == (27, 0)
    assert all(u["suspended"] for u in sandbox_users(client, usernames).values())


def _usernames(store: Any) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(Teacher.username)))
