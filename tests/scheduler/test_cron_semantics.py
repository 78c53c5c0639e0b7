"""Cron settings mean what they mean in crontab (hostile review of #17): a fixed-time job runs once on the night
the clocks go back, a day of the month and a day of the week both given mean either one, and day names wrap
through Sunday as day numbers do."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from creditbridge.scheduling.cron import CrontabTrigger, coalesce, cron_trigger, first_due

NEW_YORK = ZoneInfo("America/New_York")  # clocks go back 1 November 2026, 02:00 EDT -> 01:00 EST


def _fires(expr: str, tz: ZoneInfo, start: datetime, count: int) -> list[datetime]:
    trigger = cron_trigger(expr, tz, "push")
    out: list[datetime] = []
    at = trigger.get_next_fire_time(None, start)
    while at is not None and len(out) < count:
        out.append(at)
        at = trigger.get_next_fire_time(at, at)
    return out


def test_a_daily_job_in_the_repeated_hour_runs_once_when_the_clocks_go_back() -> None:
    fires = _fires("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK), 3)
    assert [f.astimezone(UTC) for f in fires] == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT
                                                   datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
                                                   datetime(2026, 11, 3, 6, 30, tzinfo=UTC)]
    # A scheduler restarted after the first 01:30 resumes from the ledger: it must not run the repeat either.
    trigger = cron_trigger("30 1 * * *", NEW_YORK, "push")
    last = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    now = datetime(2026, 11, 1, 6, 31, tzinfo=UTC)  # 01:31 EST, just after the repeated 01:30
    due = first_due(trigger, last, now)
    assert due == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def test_jobs_with_a_wildcard_hour_still_run_in_both_repeated_hours() -> None:
    # crontab's rule: only fixed-time jobs are kept from running twice; "every 30 minutes" means every 30 minutes.
    fires = _fires("*/30 * * * *", NEW_YORK, datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK), 5)
    assert [f.astimezone(UTC) - fires[0].astimezone(UTC) for f in fires] == [timedelta(minutes=30 * i)
                                                                             for i in range(5)]


def test_a_job_at_a_time_the_clocks_skip_runs_once_that_day() -> None:
    fires = _fires("30 2 * * *", NEW_YORK, datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK), 2)
    assert [f.astimezone(NEW_YORK).date().isoformat() for f in fires] == ["2026-03-08", "2026-03-09"]


def test_day_of_month_and_day_of_week_both_given_mean_either_as_in_crontab() -> None:
    # crontab(5): "if both fields are restricted, the command runs when either field matches".
    fires = _fires("0 5 1 * 1", UTC, datetime(2026, 12, 6, tzinfo=UTC), 4)  # 6 December 2026 is a Sunday
    assert [f.date().isoformat() for f in fires] == ["2026-12-07", "2026-12-14", "2026-12-21", "2026-12-28"]
    fires = _fires("0 5 1 * 1", UTC, datetime(2026, 12, 29, tzinfo=UTC), 2)
    assert [f.date().isoformat() for f in fires] == ["2027-01-01", "2027-01-04"]
    # One of them a wildcard: the other alone decides, as before.
    assert [f.day for f in _fires("0 5 1 * *", UTC, datetime(2026, 12, 6, tzinfo=UTC), 2)] == [1, 1]


def test_day_names_wrap_through_sunday_as_numbers_do() -> None:
    start = datetime(2026, 12, 6, tzinfo=UTC)  # a Sunday
    by_name = [f.strftime("%a") for f in _fires("0 5 * * sun-tue", UTC, start, 3)]
    assert by_name == [f.strftime("%a") for f in _fires("0 5 * * 0-2", UTC, start, 3)] == ["Sun", "Mon", "Tue"]
    assert len(_fires("0 5 * * sun-sat", UTC, start, 7)) == 7


def test_coalesce_after_the_clocks_go_back_keeps_one_run() -> None:
    trigger = cron_trigger("30 1 * * *", NEW_YORK, "push")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    now = datetime(2026, 11, 1, 6, 30, 5, tzinfo=UTC)  # the repeated 01:30, 5 s late
    run_at, nxt = coalesce(trigger, first, now, timedelta(minutes=5))
    # The repeated 01:30 is no trigger time: the missed 01:30 EDT stays the one to run (late, so missed).
    assert run_at == first
    assert nxt == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def _walked(trigger: CrontabTrigger, due: datetime, now: datetime) -> datetime:
    run_at, nxt = due, trigger.get_next_fire_time(due, now)
    while nxt is not None and nxt <= now:
        run_at, nxt = nxt, trigger.get_next_fire_time(nxt, now)
    return run_at


def test_a_year_down_is_not_walked_one_trigger_at_a_time_when_the_grace_is_shorter_than_the_interval() -> None:
    # A misfire grace (10 s) shorter than the job's interval (1 minute) left no trigger time in the grace window,
    # and coalesce walked every minute of the downtime: 16 s for a year, the loop (every job) stalled meanwhile.
    trigger = cron_trigger("* * * * *", ZoneInfo("UTC"), "reconcile")
    now = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)
    started = time.perf_counter()
    run_at, nxt = coalesce(trigger, now - timedelta(days=365), now, timedelta(seconds=10))
    assert time.perf_counter() - started < 0.5
    assert (run_at, nxt) == (datetime(2026, 12, 7, 10, 0, tzinfo=UTC), datetime(2026, 12, 7, 10, 1, tzinfo=UTC))


@pytest.mark.parametrize("expr", ["*/7 * * * *", "0 5 * * *", "15 3 * * 1", "0 5 1 * 1", "30 1 * * *"])
@pytest.mark.parametrize("down", [timedelta(minutes=3), timedelta(hours=5), timedelta(days=3), timedelta(days=40)])
def test_coalesce_runs_the_latest_trigger_time_as_walking_them_all_would(expr: str, down: timedelta) -> None:
    trigger = cron_trigger(expr, NEW_YORK, "push")
    for now in (datetime(2026, 11, 1, 6, 45, tzinfo=UTC), datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)):
        due = trigger.get_next_fire_time(None, now - down)
        if due is None or due > now:
            continue
        run_at, nxt = coalesce(trigger, due, now, timedelta(seconds=10))
        assert run_at == _walked(trigger, due, now)
        assert nxt == trigger.get_next_fire_time(run_at, now) and nxt is not None and nxt > now


def test_a_stepped_star_day_of_week_still_ands_with_the_day_of_month_as_cron_does() -> None:
    # cron ORs the two fields only when neither starts with "*": "1 * */2" stays "the 1st, if a Sun/Tue/Thu/Sat".
    fires = _fires("0 5 1 * */2", UTC, datetime(2026, 12, 6, tzinfo=UTC), 2)
    assert [f.date().isoformat() for f in fires] == ["2027-04-01", "2027-05-01"]  # a Thursday, a Saturday
