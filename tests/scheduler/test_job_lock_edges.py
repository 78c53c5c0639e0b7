"""Hostile review of the job locks (`scheduler --once` holding its job's lock, dead runs marked interrupted):
a run left `running` by a process with this process's name, and a job lock that cannot be taken at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from creditbridge.cli.main import cli
from creditbridge.scheduling.leader import instance_name
from creditbridge.store import Store, open_store
from creditbridge.store.locks import sqlite_lock_path
from creditbridge.store.models.scheduler import JobRun


def _config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return cfg


def _runs(store: Store, job_id: str) -> list[tuple[str, str | None]]:
    with store.session() as s:
        return [(r.outcome, r.error) for r in s.scalars(select(JobRun).where(JobRun.job_id == job_id)
                                                          .order_by(JobRun.id))]


def test_a_run_left_running_under_this_instance_name_is_marked_interrupted(store: Store, tmp_path: Path,
                                                                           runner: CliRunner) -> None:
    """A container restarted with its hostname kept runs the scheduler (or `--once`) under the same pid, so under
    the same `host:pid` instance name as the life that was killed mid-run. That run's row was excluded as "ours"
    and stayed `running` for ever, though the job's lock (free) says its process is gone."""
    before = datetime.now(UTC) - timedelta(hours=1)
    with store.session() as s:
        s.add(JobRun(job_id="deadline_warning", scheduled_at=before, started_at=before, outcome="running",
                     instance=instance_name(), manual=True))
    r = runner.invoke(cli, ["--config", str(_config(tmp_path, store.url)), "scheduler", "--once",
                            "deadline_warning", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outcome"] == "ok"
    assert _runs(store, "deadline_warning") == [
        ("interrupted", "the process running it stopped before it finished"), ("ok", None)]


def test_a_job_lock_that_cannot_be_taken_is_a_failed_run_not_one_left_running(tmp_path: Path,
                                                                              runner: CliRunner) -> None:
    """The job's lock file cannot be opened (another user's 0600 file beside a shared database, a read-only
    directory; here a directory in its place): the claimed run was left `running` and the error escaped as a
    traceback. It is recorded failed, naming the lock file."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(url)
    try:
        sqlite_lock_path(store, ".job-deadline_warning.lock").mkdir()
        r = runner.invoke(cli, ["--config", str(_config(tmp_path, url)), "scheduler", "--once",
                                "deadline_warning", "--json"])
        [(outcome, error)] = _runs(store, "deadline_warning")
    finally:
        store.dispose()
    assert outcome == "failed", (r.exit_code, r.output)
    assert error is not None and "job-deadline_warning.lock" in error
    assert json.loads(r.stdout)["outcome"] == "failed"


@pytest.mark.parametrize("job_id", ["deadline_warning"])
def test_a_run_of_another_live_instance_is_not_marked(store: Store, tmp_path: Path, runner: CliRunner,
                                                      job_id: str) -> None:
    """The other side of the first test: a run whose job lock is held stays `running` (skipped beside it)."""
    from creditbridge.store.locks import job_lock_for

    before = datetime.now(UTC) - timedelta(hours=1)
    with store.session() as s:
        s.add(JobRun(job_id=job_id, scheduled_at=before, started_at=before, outcome="running",
                     instance=instance_name(), manual=True))
    held = job_lock_for(store, job_id, f"job {job_id}")
    assert held is not None and held.acquire()
    try:
        r = runner.invoke(cli, ["--config", str(_config(tmp_path, store.url)), "scheduler", "--once", job_id,
                                "--json"])
    finally:
        held.release()
    assert json.loads(r.stdout)["outcome"] == "skipped", r.output
    assert [o for o, _ in _runs(store, job_id)] == ["running", "skipped"]


def test_a_run_that_goes_is_never_marked_interrupted_while_it_runs(store: Store, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A run claimed its trigger before taking the job's lock: in between, another run of the job (which held the
    lock, so marked every other `running` row dead) marked it interrupted, and once that one ended, it ran with
    its row saying `interrupted` (finished) until its own outcome was written. Now a run takes the lock first."""
    from creditbridge.scheduling import runs
    from creditbridge.settings import load_settings
    from creditbridge.store.locks import job_lock_for

    settings = load_settings(_config(tmp_path, store.url))
    job = "deadline_warning"
    seen: list[str] = []

    def quick(ctx: runs.JobContext) -> dict[str, int]:
        return {"n": 1}

    def watch(ctx: runs.JobContext) -> dict[str, int]:
        with store.session() as s:
            seen.append(s.get(JobRun, ctx.run_id).outcome)  # type: ignore[union-attr]
        return {"n": 2}

    class Late:
        """The lock of the first run: before it is taken, a whole other run of the job happens (another host)."""

        def __init__(self) -> None:
            self.inner = job_lock_for(store, job, f"job {job}")
            self.other_ran = False

        def acquire(self) -> bool:
            if not self.other_ran:
                self.other_ran = True
                with monkeypatch.context() as m:
                    m.setattr(runs, "job_lock_for", real)
                    other = runs.run_claimed(settings, store, job, datetime.now(UTC), quick, instance="other:2")
                assert other is not None and other["outcome"] == "ok"
            return self.inner.acquire()  # type: ignore[union-attr]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    real = runs.job_lock_for
    monkeypatch.setattr(runs, "job_lock_for", lambda *a: Late())
    first = runs.run_claimed(settings, store, job, datetime.now(UTC) - timedelta(minutes=1), watch, instance="me:1")
    assert first is not None and first["outcome"] == "ok"
    assert seen == ["running"]
