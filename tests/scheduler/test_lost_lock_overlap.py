"""A scheduler that loses its leader lock while a job runs lets the job finish (docs/scheduler.md). The run holds
its job's lock (store/locks.py job_lock_for) until its outcome is recorded, so the instance that takes over
neither marks it `interrupted` nor starts the same job beside it; a run whose job lock is free is dead, and is
marked `interrupted` (when the instance becomes active, or at the job's next trigger). SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from creditbridge.scheduling.loop import CreditScheduler, JobSpec
from creditbridge.scheduling.runs import JobContext
from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store
from creditbridge.store.locks import job_lock_for
from creditbridge.store.models.scheduler import JobRun


class _Lock:
    """A leader lock the test can take away (as the database does when it drops the lock's session)."""

    def __init__(self, held: bool = True) -> None:
        self.held = held

    def acquire(self) -> bool:
        return self.held

    def still_held(self) -> bool:
        return self.held

    def release(self) -> None:
        pass

    def describe(self) -> str:
        return "test lock"


def _settings(url: str) -> Settings:
    return load_settings(None, env={}, overrides={"database": {"url": url}, "scheduler": {
        "timezone": "UTC", "standby_retry_seconds": 5, "lock_check_seconds": 0.2}})


def _runs(store: Store, instance: str | None = None) -> list[JobRun]:
    with store.session() as s:
        q = select(JobRun).order_by(JobRun.scheduled_at)
        if instance is not None:
            q = q.where(JobRun.instance == instance)
        return list(s.scalars(q))


def _until(what: str, check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.05)


class _Schedulers:
    """Schedulers started in threads, each stopped and joined at the end; `release` ends the tests' long jobs (set
    at the end too, so a failed test does not leave them waiting)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.started: list[tuple[CreditScheduler, threading.Thread]] = []
        self.release = threading.Event()

    def start(self, instance: str, spec: JobSpec, lock: _Lock) -> CreditScheduler:
        sched = CreditScheduler(self.settings, self.store, specs=[spec], lock=lock, instance=instance)
        t = threading.Thread(target=sched.run, daemon=True)
        t.start()
        self.started.append((sched, t))
        return sched

    def stop(self) -> None:
        self.release.set()
        for sched, _ in self.started:
            sched.stop()
        for _, t in self.started:
            t.join(15)
            assert not t.is_alive()


@pytest.fixture
def schedulers(store: Store) -> Iterator[_Schedulers]:
    s = _Schedulers(_settings(store.url), store)
    try:
        yield s
    finally:
        s.stop()


def _cut_off(a_lock: _Lock) -> None:
    a_lock.held = False  # the database dropped a's lock session; a's job goes on
    time.sleep(0.5)  # a notices within lock_check_seconds and stops scheduling (its job still runs)


@pytest.mark.timeout(60)
def test_a_run_still_going_after_the_lock_was_lost_is_not_marked_interrupted(store: Store,
                                                                              schedulers: _Schedulers) -> None:
    started, release = threading.Event(), schedulers.release

    def long_job(ctx: JobContext) -> dict[str, int]:
        started.set()
        release.wait(20)
        return {"done": 1}

    soon = datetime.now(UTC) + timedelta(seconds=1)
    spec = JobSpec("long", CronTrigger(second=soon.second, timezone="UTC"), long_job)
    a_lock = _Lock()
    schedulers.start("a", spec, a_lock)
    assert started.wait(10)
    _cut_off(a_lock)
    b = schedulers.start("b", spec, _Lock())
    assert b.active.wait(10)
    [run] = _runs(store, "a")
    assert run.outcome == "running"
    release.set()
    # a's run records its own outcome, as it would have without the takeover.
    _until("a's run recorded", lambda: _runs(store, "a")[0].outcome != "running")
    assert _runs(store, "a")[0].outcome == "ok"


def _finished(store: Store, instance: str | None = None) -> list[JobRun]:
    return [r for r in _runs(store, instance) if r.outcome != "running"]


@pytest.mark.timeout(60)
def test_the_new_leader_does_not_start_the_job_while_the_old_run_still_goes(store: Store,
                                                                            schedulers: _Schedulers) -> None:
    guard, release = threading.Lock(), schedulers.release
    entered: list[datetime] = []
    running = [0, 0]  # now, most at once

    def long_job(ctx: JobContext) -> dict[str, int]:
        with guard:
            entered.append(ctx.scheduled_at)
            running[0] += 1
            running[1] = max(running)
        release.wait(20)
        with guard:
            running[0] -= 1
        return {"done": 1}

    spec = JobSpec("long", CronTrigger(second="*", timezone="UTC"), long_job)  # due every second
    a_lock = _Lock()
    schedulers.start("a", spec, a_lock)
    _until("a's run started", lambda: bool(entered))
    _cut_off(a_lock)
    b = schedulers.start("b", spec, _Lock())
    assert b.active.wait(10)
    # b's triggers recorded; one b is claiming at this moment is `running` until it records its skip (the job
    # itself never starting is what `entered` shows).
    _until("b's triggers came", lambda: len(_finished(store, "b")) >= 2)

    assert len(entered) == 1 and running[1] == 1, "the job was started beside its run still going"
    skipped = _finished(store, "b")
    assert {r.outcome for r in skipped} == {"skipped"}
    assert all(r.counts and "previous run is still going" in r.counts["reason"] and "job long" in r.counts["reason"]
               for r in skipped)
    assert [r.outcome for r in _runs(store, "a")] == ["running"]

    release.set()
    # Once a's run has recorded its outcome and let its job lock go, b runs the job's next trigger.
    _until("b ran the job", lambda: any(r.outcome == "ok" for r in _runs(store, "b")))
    assert [r.outcome for r in _runs(store, "a")] == ["ok"]
    assert running[1] == 1
    assert {r.outcome for r in _finished(store)} <= {"ok", "skipped"}  # b may be claiming its next trigger now


@pytest.mark.timeout(60)
def test_a_run_whose_job_lock_is_free_is_marked_interrupted(store: Store, schedulers: _Schedulers) -> None:
    """`dead` died while no scheduler was active; `cut` lost the leader lock and still runs (the test holds its job
    lock), then dies after the takeover: marked at its job's next trigger, which then runs."""
    ran = threading.Event()

    def job(ctx: JobContext) -> dict[str, int]:
        ran.set()
        return {"done": 1}

    now = datetime.now(UTC)
    with store.session() as s:
        s.add(JobRun(job_id="dead", scheduled_at=now, started_at=now, outcome="running", instance="gone:1"))
        # cut's trigger time is now: b's first trigger of the job is the next one, seconds away
        s.add(JobRun(job_id="cut", scheduled_at=now, started_at=now, outcome="running", instance="cut:1"))
    live = job_lock_for(store, "cut", "job cut")
    assert live is not None and live.acquire()
    try:
        soon = datetime.now(UTC) + timedelta(seconds=3)
        spec_cut = JobSpec("cut", CronTrigger(second=soon.second, timezone="UTC"), job)
        b = schedulers.start("b", spec_cut, _Lock())
        assert b.active.wait(10)
        assert {r.job_id: r.outcome for r in _runs(store)} == {"dead": "interrupted", "cut": "running"}
    finally:
        live.release()  # cut's process dies
    assert ran.wait(10)
    _until("b's run recorded", lambda: [r.outcome for r in _runs(store, "b")] == ["ok"])
    [cut] = _runs(store, "cut:1")
    assert cut.outcome == "interrupted" and cut.finished_at is not None
