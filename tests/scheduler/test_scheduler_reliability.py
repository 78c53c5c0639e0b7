"""Two scheduler processes on one store: exactly one active, each trigger run once, the standby takes over
when the active one is killed. On PostgreSQL (advisory lock) and on SQLite (lock file, one host)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sched_helpers import HERE, read_ticks
from sqlalchemy import select, text

from creditbridge.scheduler import LOCK_KEY
from creditbridge.store import Store, open_store
from creditbridge.store.models.scheduler import JobRun


class Instance:
    def __init__(self, url: str, tmp_path: Path, name: str, ticks: Path) -> None:
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "CB_TICK_FILE": str(ticks), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "sched_helpers.py"), url], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, timeout: float = 15.0) -> float:
        start = time.monotonic()
        while needle not in self.text():
            assert self.proc.poll() is None, f"scheduler exited: {self.text()[-2000:]}"
            assert time.monotonic() - start < timeout, f"no {needle!r} in {timeout}s: {self.text()[-2000:]}"
            time.sleep(0.05)
        return time.monotonic() - start

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def _runs(store: Store) -> list[JobRun]:
    with store.session() as s:
        return list(s.scalars(select(JobRun).order_by(JobRun.scheduled_at)))


def _advisory_holders(store: Store) -> int:
    with store.engine.connect() as c:
        return int(c.execute(text(
            # Advisory locks are per database; other tests' schedulers hold the same key in theirs.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = (:k >> 32)::oid AND objid = (:k & 4294967295)::oid"), {"k": LOCK_KEY}).scalar() or 0)


@pytest.mark.timeout(60)
def test_two_scheduler_processes_one_active_each_trigger_once_failover(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)  # migrated once, before either instance starts
    ticks = tmp_path / "ticks.txt"
    a = Instance(db_url, tmp_path, "a", ticks)
    b: Instance | None = None
    try:
        a.wait_for("scheduler active")
        b = Instance(db_url, tmp_path, "b", ticks)
        b.wait_for("scheduler standby")
        time.sleep(4)  # a runs the job every second; b stays standby
        assert "scheduler active" not in b.text()
        if store.is_postgres:
            assert _advisory_holders(store) == 1
        killed_at = datetime.now().astimezone()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        takeover = b.wait_for("scheduler active", timeout=10)
        time.sleep(3)  # b runs the job now
        assert b.stop() == 0
    finally:
        for inst in (a, b):
            if inst is not None and inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()

    lines = read_ticks(ticks)
    per_trigger = Counter(when for when, _, _ in lines)
    assert per_trigger, "the job never ran"
    assert max(per_trigger.values()) == 1, f"a trigger ran twice: {per_trigger.most_common(3)}"
    pids = [pid for _, pid, _ in lines]
    assert a.proc.pid in pids and b.proc.pid in pids, "both the first active instance and the one taking over ran"
    # Each ran only while it was active: every run of a comes before every run of b.
    last_a = max(i for i, p in enumerate(pids) if p == a.proc.pid)
    first_b = min(i for i, p in enumerate(pids) if p == b.proc.pid)
    assert last_a < first_b
    assert sum(1 for p in pids if p == a.proc.pid) >= 3
    # Triggers missed during the takeover were coalesced into one run, not replayed one by one.
    b_times = [datetime.fromisoformat(w) for w, p, _ in lines if p == b.proc.pid]
    assert all(t > killed_at.replace(microsecond=0) for t in b_times[1:])
    # The job-run table agrees with the side effect: one row per trigger, the one a was killed in interrupted.
    runs = _runs(store)
    assert len({(r.job_id, r.scheduled_at) for r in runs}) == len(runs)
    assert {r.outcome for r in runs} <= {"ok", "interrupted"}
    assert {datetime.fromisoformat(w) for w, _, _ in lines} <= {r.scheduled_at for r in runs}
    assert {r.instance.rsplit(":", 1)[1] for r in runs} == {str(a.proc.pid), str(b.proc.pid)}
    if store.is_postgres:
        assert _advisory_holders(store) == 0, "the lock is released when the scheduler stops"
    store.dispose()
    print(f"takeover after SIGKILL: {takeover:.2f}s; runs {len(runs)}")
