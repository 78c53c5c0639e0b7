"""The leader loop compares instants, not wall-clock times (hostile review of #17): in the hour the clocks go
back, `now` and the trigger times of `scheduler.timezone` share a tzinfo, so Python compared and subtracted
their wall-clock readings and ignored `fold`. An hourly job's repeated 01:00 (EST) looked due at 01:00:01 EDT
and ran an hour early, right after the first 01:00; worse, coalesce then walked forward from it and CronTrigger
kept answering the same 01:00, so the loop spun for ever: no job ran again and SIGTERM could not stop it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sched_helpers import NoLock
from sqlalchemy import select

from creditbridge.scheduling import loop
from creditbridge.scheduling.cron import coalesce, cron_trigger
from creditbridge.scheduling.loop import CreditScheduler, JobSpec
from creditbridge.settings import load_settings
from creditbridge.store import open_store
from creditbridge.store.models.scheduler import JobRun

FAKE_NOW = datetime(2026, 11, 1, 5, 0, 1, tzinfo=UTC)  # 01:00:01 EDT, the first 01:00 of the night


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Any:
        return FAKE_NOW.astimezone(tz)


@pytest.mark.timeout(60)
def test_the_repeated_hour_is_not_run_an_hour_early(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(sqlite_url)
    settings = load_settings(None, env={}, overrides={"database": {"url": sqlite_url}, "scheduler": {
        "timezone": "America/New_York", "standby_retry_seconds": 0.2, "lock_check_seconds": 0.3}})
    with store.session() as s:  # the first 01:00 (EDT) has just run
        s.add(JobRun(job_id="hourly", scheduled_at=datetime(2026, 11, 1, 5, 0, tzinfo=UTC), started_at=FAKE_NOW,
                     finished_at=FAKE_NOW, outcome="ok", instance="earlier:1", manual=False))
    ran: list[datetime] = []
    spec = JobSpec("hourly", cron_trigger("0 * * * *", loop.timezone_of(settings), "hourly"),
                   lambda ctx: ran.append(ctx.scheduled_at) or {})
    monkeypatch.setattr(loop, "datetime", _FrozenClock)
    sched = CreditScheduler(settings, store, specs=[spec], lock=NoLock(), instance="now")
    t = threading.Thread(target=sched.run, daemon=True)
    t.start()
    assert sched.active.wait(10)
    time.sleep(1.5)
    sched.stop()
    t.join(15)
    assert not t.is_alive(), "the leader loop hung (coalesce never got past the repeated hour)"
    assert ran == [], f"ran the {ran[0].isoformat()} trigger at {FAKE_NOW.isoformat()}" if ran else ""
    with store.session() as s:
        assert [r.scheduled_at for r in s.scalars(select(JobRun))] == [datetime(2026, 11, 1, 5, 0, tzinfo=UTC)]
    store.dispose()


@pytest.mark.timeout(20)
def test_coalesce_in_the_repeated_hour_returns() -> None:
    tz = ZoneInfo("America/New_York")
    hourly = cron_trigger("0 * * * *", tz, "hourly")
    due = hourly.get_next_fire_time(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), FAKE_NOW)
    assert due is not None
    # astimezone: Python never finds a time of the repeated hour == to a time of another zone (PEP 495).
    assert due.astimezone(UTC) == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 01:00 EST
    # Asked while it is still 01:00:01 EDT, in the zone's own terms as the loop asked: not due yet.
    run_at, nxt = coalesce(hourly, datetime(2026, 11, 1, 5, 0, tzinfo=UTC), FAKE_NOW.astimezone(tz), timedelta(hours=1))
    assert nxt is not None
    assert (run_at, nxt.astimezone(UTC)) == (datetime(2026, 11, 1, 5, 0, tzinfo=UTC), due.astimezone(UTC))
