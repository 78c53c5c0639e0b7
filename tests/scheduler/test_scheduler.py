"""The scheduling machinery in-process: the claim guard, coalesced runs after downtime, job ids and triggers
from the settings, losing the lock, the jobs following the pipeline's order."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from sched_helpers import NoLock, read_ticks, tick_job
from sqlalchemy import create_engine, select, text

from creditbridge.pipeline import PIPELINE
from creditbridge.scheduler import JOB_IDS, JOBS, LOCK_KEY, SchedulerError, job_specs
from creditbridge.scheduling.cron import coalesce, first_due, standard_day_of_week
from creditbridge.scheduling.loop import CreditScheduler, JobSpec
from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store
from creditbridge.store.locks import PostgresLock
from creditbridge.store.models.scheduler import JobRun


def _settings(url: str, **scheduler: object) -> Settings:
    return load_settings(None, env={}, overrides={"database": {"url": url}, "scheduler": {
        "timezone": "UTC", "standby_retry_seconds": 0.2, "lock_check_seconds": 0.3, **scheduler}})


def _start(sched: CreditScheduler) -> threading.Thread:
    t = threading.Thread(target=sched.run, daemon=True)
    t.start()
    assert sched.active.wait(10), "scheduler did not become active"
    return t


def _stop(sched: CreditScheduler, t: threading.Thread) -> None:
    sched.stop()
    t.join(15)
    assert not t.is_alive()


def _runs(store: Store) -> list[JobRun]:
    with store.session() as s:
        return list(s.scalars(select(JobRun).order_by(JobRun.scheduled_at)))


@pytest.mark.timeout(60)
def test_two_schedulers_without_the_lock_still_run_each_trigger_once(store: Store, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    ticks = tmp_path / "ticks.txt"
    monkeypatch.setenv("CB_TICK_FILE", str(ticks))
    monkeypatch.setenv("CB_TICK_SLEEP", "0.05")
    settings = _settings(store.url)
    spec = JobSpec("tick", CronTrigger(second="*", timezone="UTC"), tick_job)
    # Without the lock both certainly fire every second: only the claim stands between them.
    one = CreditScheduler(settings, store, specs=[spec], lock=NoLock(), instance="one")
    two = CreditScheduler(settings, store, specs=[spec], lock=NoLock(), instance="two")
    caplog.set_level(logging.INFO, logger="creditbridge.scheduler")
    t1, t2 = _start(one), _start(two)
    time.sleep(4.5)
    _stop(one, t1)
    _stop(two, t2)
    per_trigger = Counter(when for when, _, _ in read_ticks(ticks))
    assert len(per_trigger) >= 3
    assert max(per_trigger.values()) == 1, per_trigger.most_common(2)
    conflicts = [r for r in caplog.records if "already claimed" in r.getMessage()]
    assert len(conflicts) >= 2, "both schedulers fired the same triggers"
    runs = _runs(store)
    assert len(runs) == len(per_trigger)
    assert {r.outcome for r in runs} == {"ok"}


def _ran_last_at(store: Store, job_id: str, when: datetime) -> None:
    """What a scheduler that went down leaves behind: the job's last recorded trigger, now long past."""
    with store.session() as s:
        s.add(JobRun(job_id=job_id, scheduled_at=when, started_at=when, finished_at=when, outcome="ok",
                     instance="gone:1", manual=False))


@pytest.mark.timeout(60)
def test_runs_missed_while_down_happen_once_on_restart(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = tmp_path / "ticks.txt"
    monkeypatch.setenv("CB_TICK_FILE", str(ticks))
    # The real job ids and cron settings; every minute for push, so ten minutes down miss ten runs.
    settings = _settings(store.url, push="* * * * *")
    specs = [dataclasses.replace(s, func=tick_job) for s in job_specs(settings)]
    first = CreditScheduler(settings, store, specs=specs)
    _stop(first, _start(first))
    assert read_ticks(ticks) == []

    down_since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    _ran_last_at(store, "push", down_since)
    restarted_at = datetime.now(UTC)
    second = CreditScheduler(settings, store, specs=specs)
    t = _start(second)
    deadline = time.monotonic() + 10
    while not read_ticks(ticks) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    _stop(second, t)
    missed = [r for r in _runs(store) if r.job_id == "push" and down_since < r.scheduled_at <= restarted_at]
    assert len(missed) == 1, [r.scheduled_at for r in missed]
    # Coalesced to the latest missed trigger, not the first.
    assert missed[0].scheduled_at > down_since
    assert missed[0].scheduled_at.second == 0 and missed[0].outcome == "ok"
    assert [j for _, _, j in read_ticks(ticks)].count("push") == len(
        [r for r in _runs(store) if r.job_id == "push" and r.scheduled_at > down_since])
    # The other jobs (daily) were not due and did not run.
    assert {r.job_id for r in _runs(store)} == {"push"}


@pytest.mark.timeout(60)
def test_run_missed_by_more_than_the_grace_time_is_skipped(store: Store, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = tmp_path / "ticks.txt"
    monkeypatch.setenv("CB_TICK_FILE", str(ticks))
    settings = _settings(store.url, push="0 5 * * *", misfire_grace_seconds=60)
    specs = [dataclasses.replace(s, func=tick_job) for s in job_specs(settings) if s.id == "push"]
    first = CreditScheduler(settings, store, specs=specs)
    _stop(first, _start(first))
    now = datetime.now(UTC)
    last_fire = now.replace(hour=5, minute=0, second=0, microsecond=0)
    if last_fire > now:
        last_fire -= timedelta(days=1)
    if now - last_fire < timedelta(minutes=5):
        pytest.skip("too close to 05:00 UTC for this test")
    _ran_last_at(store, "push", last_fire - timedelta(days=1))  # so last_fire is the one missed
    second = CreditScheduler(settings, store, specs=specs)
    t = _start(second)
    time.sleep(1.5)
    _stop(second, t)
    assert read_ticks(ticks) == []
    assert [r.scheduled_at for r in _runs(store)] == [last_fire - timedelta(days=1)]


def test_jobs_come_from_the_settings_with_explicit_ids() -> None:
    settings = _settings("sqlite://", timezone="Asia/Shanghai", push="15 6 * * 1-5")
    specs = {s.id: s for s in job_specs(settings)}
    assert tuple(specs) == JOB_IDS
    nxt = specs["push"].trigger.get_next_fire_time(None, datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # a Friday
    assert nxt is not None and nxt.isoformat() == "2026-11-30T06:15:00+08:00"  # Monday, Shanghai time
    with pytest.raises(SchedulerError, match=r"scheduler\.push"):
        job_specs(_settings("sqlite://", push="every day"))
    with pytest.raises(SchedulerError, match=r"scheduler\.timezone"):
        job_specs(_settings("sqlite://", timezone="Mars/Olympus"))


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_losing_the_postgres_lock_stops_scheduling_until_it_is_back(pg_url: str, pg_admin_url: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from creditbridge.store import open_store

    store = open_store(pg_url)
    monkeypatch.setenv("CB_TICK_FILE", str(tmp_path / "ticks.txt"))
    settings = _settings(pg_url)
    lock = PostgresLock(store.engine, LOCK_KEY)
    sched = CreditScheduler(settings, store, lock=lock,
                            specs=[JobSpec("tick", CronTrigger(second="*", timezone="UTC"), tick_job)])
    t = _start(sched)
    assert lock.still_held()
    # The database drops the lock's session (a restart, a failover, an administrator).
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        killed = c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND database = (SELECT oid FROM pg_database WHERE datname = :d)"),
                           {"d": store.engine.url.database}).all()
    admin.dispose()
    assert killed
    deadline = time.monotonic() + 10
    while sched.lock_losses == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sched.lock_losses == 1, "the scheduler kept running without its lock"
    # Nobody else holds it: the instance takes it again and carries on.
    assert sched.active.wait(10)
    assert lock.still_held()
    _stop(sched, t)
    store.dispose()


@pytest.mark.parametrize(("dow", "expected"), [
    ("1-5", "mon,tue,wed,thu,fri"), ("0", "sun"), ("7", "sun"), ("6,0", "sun,sat"), ("*/2", "sun,tue,thu,sat"),
    ("mon-fri", "mon,tue,wed,thu,fri"), ("sun-tue", "sun,mon,tue"), ("*", "*"), ("5-7", "sun,fri,sat")])
def test_day_of_week_numbers_follow_crontab_not_apscheduler(dow: str, expected: str) -> None:
    assert standard_day_of_week(dow) == expected


@pytest.mark.timeout(60)
def test_stopping_lets_a_running_job_finish_and_record_its_outcome(sqlite_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    monkeypatch.setenv("CB_TICK_FILE", str(tmp_path / "ticks.txt"))
    monkeypatch.setenv("CB_TICK_SLEEP", "1.5")
    sched = CreditScheduler(_settings(sqlite_url), store,
                            specs=[JobSpec("tick", CronTrigger(second="*", timezone="UTC"), tick_job)])
    t = _start(sched)
    deadline = time.monotonic() + 10
    while not [r for r in _runs(store) if r.outcome == "running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    _stop(sched, t)  # as SIGTERM does
    runs = _runs(store)
    assert runs and all(r.outcome == "ok" and r.finished_at is not None for r in runs)
    assert len(read_ticks(tmp_path / "ticks.txt")) == len(runs)
    store.dispose()


def test_the_jobs_run_the_pipeline_in_its_order_through_the_night() -> None:
    """The pipeline's order is declared once (pipeline.py); the jobs list it in that order, and their default
    cron times follow it: from the night's catalog sync, each next step runs after the one before, and the
    night's push (once a day) comes after the whole chain."""
    piped = [step.job for step in PIPELINE if step.job]
    assert piped == ["catalog_sync", "roster_sync", "reconcile", "evaluate", "push"]
    assert [j for j in JOB_IDS if j in piped] == piped
    assert tuple(JOBS) == JOB_IDS
    specs = {s.id: s for s in job_specs(_settings("sqlite://"))}
    midnight = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    chain, at = [], midnight
    for job in piped:
        at = specs[job].trigger.get_next_fire_time(None, at + timedelta(seconds=1))
        chain.append(at.strftime("%H:%M"))
    assert chain == ["01:30", "02:00", "04:00", "04:30", "05:00"]
    assert at == specs["push"].trigger.get_next_fire_time(None, midnight)


def test_missed_trigger_times_coalesce_into_the_latest_within_the_grace_time() -> None:
    every_minute = CronTrigger(minute="*", timezone="UTC")
    now = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)
    # A month down: not walked minute by minute; the latest trigger time runs, the next one follows it.
    started = time.perf_counter()
    run_at, nxt = coalesce(every_minute, now - timedelta(days=30), now, timedelta(hours=1))
    assert time.perf_counter() - started < 1.0
    assert (run_at, nxt) == (datetime(2026, 12, 7, 10, 0, tzinfo=UTC), datetime(2026, 12, 7, 10, 1, tzinfo=UTC))
    # A daily job ten days down, 5 h past its time, a 60 s grace: the latest is too late, so it is missed.
    daily = CronTrigger(hour=5, timezone="UTC")
    run_at, nxt = coalesce(daily, now - timedelta(days=10), now, timedelta(seconds=60))
    assert now - run_at > timedelta(seconds=60)
    assert nxt == datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
    # Never run on a schedule: due from now; run before: the first trigger time after the last one.
    assert first_due(daily, None, now) == datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
    assert first_due(daily, datetime(2026, 12, 1, 5, 0, tzinfo=UTC), now) == datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


@pytest.mark.timeout(60)
def test_a_job_never_overlaps_itself(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    ticks = tmp_path / "ticks.txt"
    monkeypatch.setenv("CB_TICK_FILE", str(ticks))
    monkeypatch.setenv("CB_TICK_SLEEP", "1.5")  # each run outlasts the next trigger time
    caplog.set_level(logging.INFO, logger="creditbridge.scheduler")
    sched = CreditScheduler(_settings(sqlite_url), store,
                            specs=[JobSpec("tick", CronTrigger(second="*", timezone="UTC"), tick_job)])
    t = _start(sched)
    time.sleep(4.5)
    _stop(sched, t)
    started = sorted(datetime.fromisoformat(when) for when, _, _ in read_ticks(ticks))
    assert len(started) >= 2
    assert all(b - a >= timedelta(seconds=2) for a, b in pairwise(started)), started
    assert any("previous run is still going" in r.getMessage() for r in caplog.records)
    store.dispose()
