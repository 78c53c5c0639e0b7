"""The lock per flow (store/locks.py): who holds it is named, nested calls re-enter, other threads and
processes are refused, dry runs take none; `credits evaluate` through the real CLI. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
from cli_process import run_cli

from creditbridge.store import Store
from creditbridge.store.locks import FlowBusy, flow_lock


def test_nested_calls_reenter_other_threads_are_refused_with_the_holder_named(store: Store) -> None:
    with flow_lock(store, "evaluate", "credits evaluate"):
        with flow_lock(store, "evaluate", "credits evaluate"):  # a flow calling another part of itself
            pass
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with flow_lock(store, "evaluate", "credits evaluate"):
                    pass
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], FlowBusy)
        assert re.match(rf'another "credits evaluate" is running on this store \(since .* UTC, pid {os.getpid()} on ',
                        str(errors[0]))
        with flow_lock(store, "push", "push"):  # another flow's lock is another lock
            pass
    with flow_lock(store, "evaluate", "credits evaluate"):  # released when the block ends
        pass


def test_credits_evaluate_refused_while_another_holds_the_store(store: Store, tmp_path: Path) -> None:
    env = {"CREDITBRIDGE_DATABASE_URL": store.url}
    with flow_lock(store, "evaluate", "credits evaluate"):
        ran = run_cli(None, "credits", "evaluate", "--summary", "--json", env=env, cwd=tmp_path)
    assert ran.code == 2 and ran.stdout == "", ran.output
    assert ran.stderr.startswith('error: another "credits evaluate" is running on this store (since ')
    assert f"pid {os.getpid()}" in ran.stderr and "Traceback" not in ran.output
    after = run_cli(None, "credits", "evaluate", "--summary", "--json", env=env, cwd=tmp_path)
    assert after.code == 0, after.output


@pytest.mark.parametrize("kind", ["roster", "catalog"])
def test_a_dry_run_takes_no_lock(store: Store, tmp_path: Path, kind: str) -> None:
    env = {"CREDITBRIDGE_DATABASE_URL": store.url, "CREDITBRIDGE_USERNAME_KEY": "test-key"}
    path = tmp_path / f"{kind}.csv"
    path.write_text("身份证号,姓名,学校代码,学校名称,区县,地市,学段,学科,是否乡村教师,任职状态\n" if kind == "roster"
                    else "code,title,kind,hours\nC1,Ethics,required,10\n", encoding="utf-8")
    with flow_lock(store, "sync", "sync roster"):
        ran = run_cli(None, "sync", kind, str(path), "--dry-run", "--json", env=env, cwd=tmp_path)
        busy = run_cli(None, "sync", kind, str(path), "--json", env=env, cwd=tmp_path)
    assert ran.code == 0, ran.output
    assert busy.code == 2 and 'another "sync roster" is running' in busy.stderr, busy.output


def test_a_lock_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    from creditbridge import CreditbridgeError
    from creditbridge.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        (tmp_path / "state.db.push.lock").mkdir()  # something in the way that is no file (works as root too)
        with pytest.raises(CreditbridgeError, match=r"cannot take the push lock \(lock file .*state.db.push.lock\): "
                                                    "Is a directory"), flow_lock(store, "push", "push"):
            pass
    finally:
        store.dispose()


def test_a_scheduled_push_meeting_a_manual_one_is_recorded_failed_with_the_reason(store: Store,
                                                                                  tmp_path: Path) -> None:
    from click.testing import CliRunner

    from creditbridge.cli.main import cli

    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "{store.url}"\n', encoding="utf-8")
    held, done = threading.Event(), threading.Event()

    def manual_push() -> None:  # another thread stands for another process: the lock is per thread too
        with flow_lock(store, "push", "push"):
            held.set()
            done.wait(30)

    t = threading.Thread(target=manual_push)
    t.start()
    try:
        assert held.wait(30)
        r = CliRunner().invoke(cli, ["--config", str(config), "scheduler", "--once", "push", "--json"], env={})
    finally:
        done.set()
        t.join()
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["outcome"] == "failed"
    assert doc["error"].startswith('FlowBusy: another "push" is running on this store (since ')
