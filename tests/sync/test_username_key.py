"""#14 item 1: Moodle usernames must not be derivable from the ID number without a secret key.

A sync that would name accounts with an empty sync.username_key is refused before anything happens; the key
comes from the config file or $CREDITBRIDGE_USERNAME_KEY; a site whose accounts were named with another key
keeps working when the key is set (the store knows each teacher's account by ID number, not by username)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, select
from sync_helpers import Env, make_env, people, write_roster

from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.sync import SyncRun


def without_key(env: Env) -> Env:
    """The same config with its username_key line removed (the key left at its empty default)."""
    text = env.config.read_text(encoding="utf-8").replace('username_key = "test-key"\n', "")
    env.config.write_text(text, encoding="utf-8")
    return env


def cli(env: Env, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    environ.update(env.env, **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(env.config), *args],
                          env=environ, capture_output=True, text=True, timeout=120)


def moodle_usernames(sandbox: Any) -> set[str]:
    return {r["username"] for r in sandbox.state.rows("SELECT username FROM user WHERE deleted = 0 AND id > 2")}


def runs(db_url: str) -> int:
    store = open_store(db_url)
    try:
        with store.session() as s:
            return s.scalar(select(func.count()).select_from(SyncRun)) or 0
    finally:
        store.dispose()


def hashed(key: str, id_number: str, prefix: str = "t") -> str:
    return prefix + hmac.new(key.encode(), id_number.encode(), hashlib.sha256).hexdigest()[:16]


def test_empty_key_is_refused_before_anything_happens(tmp_path: Path, sandbox_server: Any, db_url: str) -> None:
    env = without_key(make_env(tmp_path, sandbox_server, db_url))
    roster = write_roster(tmp_path / "r.csv", people(3))
    before = moodle_usernames(sandbox_server)
    proc = cli(env, "sync", "roster", str(roster))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: sync.username_key is empty")
    assert "CREDITBRIDGE_USERNAME_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert moodle_usernames(sandbox_server) == before  # no account made with an invertible name
    assert runs(db_url) == 0  # not even a run recorded
    # A whitespace-only key is as good as none.
    blank = cli(env, "sync", "roster", str(roster), extra_env={"CREDITBRIDGE_USERNAME_KEY": " "})
    assert blank.returncode == 2 and "sync.username_key is empty" in blank.stderr


def test_commands_that_name_no_account_work_without_a_key(tmp_path: Path, sandbox_server: Any,
                                                          sqlite_url: str) -> None:
    env = without_key(make_env(tmp_path, sandbox_server, sqlite_url))
    roster = write_roster(tmp_path / "r.csv", people(3))
    dry = cli(env, "sync", "roster", str(roster), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["created"] == 3
    status = cli(env, "intake", "status", "--json")
    assert status.returncode == 0, status.stderr


def test_key_from_the_environment_names_the_accounts(tmp_path: Path, sandbox_server: Any, sqlite_url: str) -> None:
    env = without_key(make_env(tmp_path, sandbox_server, sqlite_url))
    staff = people(2)
    proc = cli(env, "sync", "roster", str(write_roster(tmp_path / "r.csv", staff)), "--json",
               extra_env={"CREDITBRIDGE_USERNAME_KEY": "from-the-environment"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["created"] == 2
    made = moodle_usernames(sandbox_server)
    assert {hashed("from-the-environment", p.id_number) for p in staff} <= made
    assert not {hashed("", p.id_number) for p in staff} & made  # never the unkeyed hash


def test_setting_a_new_key_on_a_site_with_users_keeps_them(tmp_path: Path, sandbox_server: Any, db_url: str,
                                                           runner: CliRunner) -> None:
    """Accounts named with an old key (the empty one, on a site from before this change) stay the teachers'
    accounts: updates and suspensions go to them, nobody gets a second account; only teachers new to the
    store are named with the new key."""
    env = make_env(tmp_path, sandbox_server, db_url)
    staff = people(3)
    first = env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", staff))
    assert first["created"] == 3
    old_names = {hashed("test-key", p.id_number) for p in staff}
    assert old_names <= moodle_usernames(sandbox_server)

    env.config.write_text(env.config.read_text(encoding="utf-8").replace('"test-key"', '"a-new-random-key"'),
                          encoding="utf-8")
    newcomer = people(1, start=50)[0]
    changed = staff[0].moved(name="改名")
    second = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", [changed, *staff[1:], newcomer]))
    assert (second["created"], second["updated"]) == (1, 1)
    assert moodle_usernames(sandbox_server) == old_names | {hashed("a-new-random-key", newcomer.id_number)}
    renamed = sandbox_server.state.user_by_username(hashed("test-key", changed.id_number))
    assert renamed["lastname"] + renamed["firstname"] == "改名"
    store = open_store(db_url)
    with store.session() as s:
        stored = dict(s.execute(select(Teacher.id_number, Teacher.username)).all())
    store.dispose()
    assert stored[staff[1].id_number] == hashed("test-key", staff[1].id_number)
    assert stored[newcomer.id_number] == hashed("a-new-random-key", newcomer.id_number)
