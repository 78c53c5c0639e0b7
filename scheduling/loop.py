"""The leader loop: wait as a standby until this instance holds the leader lock, then fire each job at its
cron trigger times until stopped or the lock is lost.

Why a loop of our own over `CronTrigger.get_next_fire_time`, not APScheduler's scheduler: a run's key in the
ledger is its (job, trigger time), and APScheduler 3 does not give a job function its trigger time; getting it
meant subclassing its executor on private internals (`_do_submit_job`, `_run_job_error`, `_jobstore_alias`).
APScheduler's job store and `max_instances` are not needed either: the leader lock keeps one active scheduler
per store, the ledger's unique (job, trigger time) claim keeps one run per trigger even with two, and the
ledger is where the schedule resumes after a restart. What APScheduler 3 still does here is its public part:
crontab parsing and trigger arithmetic (scheduling/cron.py).

The rules kept from the APScheduler set-up this replaces (docs/scheduler.md "Exactly once per trigger"):
- resume: each job is due at the first trigger time after the last one in the ledger (`first_due`), so runs
  missed while no scheduler was up happen once on restart, coalesced into the latest (`coalesce`);
- misfire: a trigger time more than `misfire_grace_seconds` late is not run: logged as missed, not recorded;
- one job never overlaps itself: a trigger time that comes while the job's previous run still goes is
  skipped with a warning; different jobs overlap, up to `max_workers` threads;
- stopping (SIGTERM, or the lock lost) lets running jobs finish and record their outcome before the lock goes;
- across instances too: a run holds its job's lock (scheduling/runs.py), so the instance that takes over from
  one that lost the lock neither starts that job beside the run still going (the trigger is recorded skipped)
  nor marks the run interrupted; it marks a run interrupted only once its job's lock is free (its process died).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from creditbridge.scheduling.cron import coalesce, first_due, timezone_of
from creditbridge.scheduling.leader import LeaderLock, instance_name, leader_lock
from creditbridge.scheduling.runs import JobFunc, interrupt_dead_runs, run_claimed, scrub
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.job_ledger import last_trigger

log = logging.getLogger("creditbridge.scheduler")

# `now` is UTC throughout: trigger times are in scheduler.timezone, and Python compares (and subtracts) two
# datetimes of one zone by their wall-clock readings, so in the hour the clocks go back a repeated time looked
# an hour earlier than it is. Between zones it compares instants.
# The longest the loop sleeps: a wall clock set back or forward (NTP, a suspended VM) is noticed this soon.
_MAX_SLEEP_SECONDS = 1.0

_Run = Future[dict[str, Any] | None]  # a job's run in the pool: what run_claimed returns


@dataclass(frozen=True)
class JobSpec:
    id: str
    trigger: BaseTrigger
    func: JobFunc
    name: str = ""


class CreditScheduler:
    """Waits as a standby until it holds the lock, then runs the schedule until stopped or the lock is lost."""

    def __init__(self, settings: Settings, store: Store, *, specs: list[JobSpec], lock: LeaderLock | None = None,
                 instance: str | None = None) -> None:
        self.settings, self.store, self.specs = settings, store, specs
        self.lock = lock if lock is not None else leader_lock(settings, store)
        self.instance = instance or instance_name()
        self.tz = timezone_of(settings)
        self.grace = timedelta(seconds=settings.scheduler.misfire_grace_seconds)
        self._stop = threading.Event()
        self.active = threading.Event()
        self.lock_losses = 0  # times the lock was taken away while active (observable by operators and tests)

    def stop(self) -> None:
        """Ask the scheduler to stop; safe from a signal handler (the loop notices within a second)."""
        self._stop.set()

    def run(self) -> None:
        """Block until stop(): standby while another instance holds the lock, active while this one does."""
        retry = self.settings.scheduler.standby_retry_seconds
        said_standby = False
        while not self._stop.is_set():
            if not self.lock.acquire():
                if not said_standby:
                    log.info("scheduler standby (%s): another instance holds %s; retrying every %ss",
                             self.instance, self.lock.describe(), retry)
                    said_standby = True
                self._stop.wait(retry)
                continue
            said_standby = False
            failed = False
            try:
                # A lost lock also waits a retry interval: the database that dropped it may drop it again.
                failed = self._run_active()
            except Exception as e:  # the store went away mid-start, say: give the lock up and try again later
                log.error("scheduler %s could not run the schedule: %s", self.instance,
                          scrub(f"{type(e).__name__}: {e}"))
                failed = True
            finally:
                self.active.clear()
                self.lock.release()
            if failed:
                self._stop.wait(retry)
        log.info("scheduler %s stopped", self.instance)

    def _run_active(self) -> bool:
        """Run the schedule until stop() or until the lock is lost; True when it was lost."""
        orphans = interrupt_dead_runs(self.store)
        now = datetime.now(UTC)
        due = {spec.id: first_due(spec.trigger, last_trigger(self.store, spec.id), now) for spec in self.specs}
        running: dict[str, _Run] = {}
        check_every = self.settings.scheduler.lock_check_seconds
        next_check = time.monotonic() + check_every
        lost = False
        log.info("scheduler active (%s) holding %s; %d interrupted run(s) of an earlier instance marked",
                 self.instance, self.lock.describe(), orphans)
        self.active.set()
        # Leaving the block waits for the running jobs: they finish and record their outcome before the lock goes.
        with ThreadPoolExecutor(self.settings.scheduler.max_workers, thread_name_prefix="scheduler-job") as pool:
            while not self._stop.is_set():
                now = datetime.now(UTC)
                for spec in self.specs:
                    when = due[spec.id]
                    if when is not None and when <= now:
                        run_at, due[spec.id] = coalesce(spec.trigger, when, now, self.grace)
                        self._fire(pool, running, spec, run_at, now)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + check_every
                    if not self.lock.still_held():
                        log.error("scheduler %s lost %s; stopping the schedule", self.instance, self.lock.describe())
                        lost = True
                        break
                self._stop.wait(self._sleep(due, next_check))
        if lost:
            self.lock_losses += 1
            log.warning("scheduler %s back to standby", self.instance)
        return lost

    def _fire(self, pool: ThreadPoolExecutor, running: dict[str, _Run], spec: JobSpec,
              run_at: datetime, now: datetime) -> None:
        late = now - run_at
        if late > self.grace:
            log.warning("job %s missed its %s run by %s (more than the grace time)", spec.id, run_at.isoformat(), late)
            return
        previous = running.get(spec.id)
        if previous is not None and not previous.done():
            log.warning("job %s: its %s run skipped, the previous run is still going", spec.id, run_at.isoformat())
            return
        future = pool.submit(run_claimed, self.settings, self.store, spec.id, run_at, spec.func,
                             instance=self.instance)
        future.add_done_callback(lambda f: _log_crash(spec.id, f))
        running[spec.id] = future

    def _sleep(self, due: dict[str, datetime | None], next_check: float) -> float:
        now = datetime.now(UTC)
        until = [(when - now).total_seconds() for when in due.values() if when is not None]
        until.append(next_check - time.monotonic())
        return max(0.0, min(_MAX_SLEEP_SECONDS, *until))


def _log_crash(job_id: str, future: _Run) -> None:
    """run_claimed records a job's own failure; what reaches here is the ledger itself failing (the store gone)."""
    exc = future.exception()
    if exc is not None:
        log.error("job %s could not be run: %s", job_id, scrub(f"{type(exc).__name__}: {exc}"))
