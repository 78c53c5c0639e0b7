"""Cron settings as APScheduler 3 triggers, and the due-time arithmetic of the leader loop.

Only a trigger's public `get_next_fire_time` is used: the loop (scheduling/loop.py) asks it when each job is
due next and decides itself which missed trigger times coalesce into one run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from creditbridge import CreditbridgeError
from creditbridge.settings import Settings


class SchedulerError(CreditbridgeError):
    """A scheduler setting or request is wrong; the message names the setting or job."""


def timezone_of(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise SchedulerError(f"scheduler.timezone: unknown time zone {settings.scheduler.timezone!r}") from e


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_day_of_week(field: str) -> str:
    """Crontab numbers days 0-7 from Sunday; APScheduler 3 numbers them from Monday (its from_crontab warns
    about this). Numbers are turned into day names here so "1-5" means Monday to Friday, as in crontab."""
    if field == "*" or not any(ch.isdigit() for ch in field):
        return field
    days: list[int] = []
    for part in field.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _day_number(a), _day_number(b)
            if hi < lo and hi == 0:
                hi = 7  # "5-0" or "fri-sun": through Sunday
        else:
            lo = hi = _day_number(rng)
        if step < 1 or lo > hi:
            raise ValueError(f"bad day-of-week {part!r}")
        days += [d % 7 for d in range(lo, hi + 1, step)]
    return ",".join(_DAY_NAMES[d] for d in sorted(set(days)))


def _day_number(token: str) -> int:
    t = token.strip().lower()
    if t.isdigit() and 0 <= int(t) <= 7:
        return int(t)
    if t[:3] in _DAY_NAMES:
        return _DAY_NAMES.index(t[:3])
    raise ValueError(f"bad day of week {token!r}")


def cron_trigger(expr: str, tz: ZoneInfo, setting: str) -> CronTrigger:
    try:
        fields = expr.split()
        if len(fields) == 5:
            fields[4] = standard_day_of_week(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=tz)
    except ValueError as e:
        raise SchedulerError(f"scheduler.{setting}: not a cron expression ({expr!r}): {e}") from e


def first_due(trigger: BaseTrigger, last: datetime | None, now: datetime) -> datetime | None:
    """When a job is due once a scheduler becomes active: the first trigger time after its last recorded one
    (already past when runs were missed while no scheduler was up), or the first from now for a job that never
    ran on a schedule. None: the trigger will never fire."""
    if last is None:
        return trigger.get_next_fire_time(None, now)
    return trigger.get_next_fire_time(last, now)


def coalesce(trigger: BaseTrigger, due: datetime, now: datetime,
             grace: timedelta) -> tuple[datetime, datetime | None]:
    """(the one trigger time to run now, the next one after it) for a job due at `due` <= `now`.

    Every trigger time missed up to now coalesces into the latest (APScheduler's `coalesce=True`). Only the
    last `grace` can hold a time that still runs, so a long downtime of a frequent job is not walked through
    one trigger time at a time."""
    run_at = due
    if now - due > grace:
        recent = trigger.get_next_fire_time(None, now - grace)
        if recent is not None and recent <= now:
            run_at = recent
    nxt: datetime | None = trigger.get_next_fire_time(run_at, now)
    while nxt is not None and nxt <= now:
        run_at = nxt
        nxt = trigger.get_next_fire_time(run_at, now)
    return run_at, nxt
