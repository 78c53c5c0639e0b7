"""Cron settings as APScheduler 3 triggers, and the due-time arithmetic of the leader loop.

Only APScheduler's public API is used: a CronTrigger's `get_next_fire_time`, and its `fields` to read a wall-clock
minute where the clocks change (CrontabTrigger). The loop (scheduling/loop.py) asks when each job is due next
and decides itself which missed trigger times coalesce into one run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    about this). Numbers are turned into day names here so "1-5" means Monday to Friday, as in crontab. Names
    go through the same arithmetic: APScheduler refuses a range of names that wraps ("sun-tue", "sun-sat")."""
    if field.startswith("*") and "/" not in field:
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


class CrontabTrigger(BaseTrigger):
    """A crontab expression as crontab(5) reads it, on APScheduler 3's CronTrigger arithmetic. Two rules where
    APScheduler's own reading differs:
    - a day of the month and a day of the week both restricted ("0 5 1 * 1") mean either one (crontab ORs
      them; CronTrigger ANDs them, so that example ran only on a Monday the 1st): one CronTrigger each, the
      earlier time wins;
    - a fixed-time job (neither minute nor hour a wildcard) runs once on the night the clocks go back, as cron
      does: CronTrigger answers the repeated wall-clock time too, a second run of a daily job an hour later.
      Wildcard jobs ("*/30 * * * *") keep running through both hours, as in cron."""

    def __init__(self, parts: list[CronTrigger], *, fixed_time: bool, tz: ZoneInfo) -> None:
        self.parts = parts
        self.fixed_time = fixed_time
        self.tz = tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The first trigger time after `previous_fire_time` (at or after `now` when there is none), always
        later than `previous_fire_time`: around the hour the clocks go back CronTrigger answers the
        first reading of a repeated wall-clock time again (the same instant, or an earlier one), and a caller
        walking forward from each answer (coalesce) never got out."""
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            start = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        for _ in range(_MAX_SKIPS):
            nxt = self._first_from(start)
            if nxt is None or not (self.fixed_time and _repeated_wall_time(nxt)):
                return nxt
            start = nxt.astimezone(UTC) + timedelta(microseconds=1)
        raise SchedulerError(f"no trigger time found after {start.isoformat()}")

    def _first_from(self, start: datetime) -> datetime | None:
        """The first trigger time at or after the instant `start`. CronTrigger's answer stands unless the
        clocks change between `start` and it; then the minutes between are read on the wall clock one by one
        (at most a day of them, twice a year), each with the UTC offset it really has."""
        times = [t for part in self.parts if (t := part.get_next_fire_time(None, start)) is not None]
        # min() by instant: aware datetimes of one zone compare by wall time, which the repeated hour breaks.
        answer = min(times, key=lambda t: t.astimezone(UTC)) if times else None
        local_start = start.astimezone(self.tz)
        if answer is not None and answer.astimezone(UTC) >= start and answer.utcoffset() == local_start.utcoffset():
            return answer
        minute = start.replace(second=0, microsecond=0)
        if minute < start:
            minute += timedelta(minutes=1)
        until = start + timedelta(days=1)
        if answer is not None and answer.astimezone(UTC) >= start:
            until = min(until, answer.astimezone(UTC))
        while minute < until:
            wall = minute.astimezone(self.tz)
            if any(_matches(part, wall) for part in self.parts):
                return wall
            minute += timedelta(minutes=1)
        if answer is not None and answer.astimezone(UTC) >= start:
            return answer
        return self._first_from(until) if answer is not None else None

    def __str__(self) -> str:
        return " or ".join(str(p) for p in self.parts)


_MAX_SKIPS = 100  # repeated wall-clock times one call may skip: a night holds at most an hour's worth


def _matches(trigger: CronTrigger, wall: datetime) -> bool:
    """Whether the wall-clock time `wall` is one of the trigger's times (every field holds its value)."""
    return all(field.get_next_value(wall) == field.get_value(wall) for field in trigger.fields)


def _repeated_wall_time(t: datetime) -> bool:
    """Whether `t` is the second time its wall-clock time happens that night (the hour the clocks go back)."""
    first = t.replace(fold=0)
    return first.utcoffset() != t.replace(fold=1).utcoffset() and t.astimezone(UTC) > first.astimezone(UTC)


def cron_trigger(expr: str, tz: ZoneInfo, setting: str) -> CrontabTrigger:
    try:
        fields = expr.split()
        if len(fields) != 5:
            raise ValueError(f"five fields expected, got {len(fields)}")
        minute, hour, dom, month, dow = fields[0], fields[1], fields[2], fields[3], standard_day_of_week(fields[4])
        days = [(dom, dow)]
        if not dom.startswith("*") and not fields[4].startswith("*"):  # as cron: "*/2" is a star
            days = [(dom, "*"), ("*", dow)]
        parts = [CronTrigger(minute=minute, hour=hour, day=d, month=month, day_of_week=w, timezone=tz)
                 for d, w in days]
        return CrontabTrigger(parts, fixed_time=not minute.startswith("*") and not hour.startswith("*"), tz=tz)
    except ValueError as e:
        raise SchedulerError(f"scheduler.{setting}: not a cron expression ({expr!r}): {e}") from e


def first_due(trigger: BaseTrigger, last: datetime | None, now: datetime) -> datetime | None:
    """When a job is due once a scheduler becomes active: the first trigger time after its last recorded one
    (already past when runs were missed while no scheduler was up), or the first from now for a job that never
    ran on a schedule. None: the trigger will never fire."""
    now = now.astimezone(UTC)
    if last is None:
        return trigger.get_next_fire_time(None, now)
    return trigger.get_next_fire_time(last, now)


def coalesce(trigger: BaseTrigger, due: datetime, now: datetime,
             grace: timedelta) -> tuple[datetime, datetime | None]:
    """(the one trigger time to run now, the next one after it) for a job due at `due` <= `now`.

    Every trigger time missed up to now coalesces into the latest (APScheduler's `coalesce=True`). A long
    downtime of a frequent job is not walked through one trigger time at a time: the latest is looked for in
    a window before now that doubles from the grace time until it holds one (a trigger can only be asked
    forward), so the walk below covers a couple of trigger times whatever the grace and the downtime."""
    now = now.astimezone(UTC)  # compared as instants: in one zone Python compares wall times, fold ignored
    run_at = due
    back = max(grace, timedelta(seconds=1))
    while now - back > due:
        recent = trigger.get_next_fire_time(None, now - back)
        if recent is not None and recent <= now:
            run_at = recent
            break
        back *= 2
    nxt: datetime | None = trigger.get_next_fire_time(run_at, now)
    while nxt is not None and nxt <= now:
        run_at = nxt
        nxt = trigger.get_next_fire_time(run_at, now)
    return run_at, nxt
