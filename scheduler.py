"""The scheduler: roster and catalog sync, reconciliation, evaluation, push and deadline warnings on cron
schedules, run by APScheduler 3 in its own process (`creditbridge scheduler`, or `creditbridge run`), never
inside a web worker.

Three layers keep every trigger to one run:
- one active scheduler per state store: a PostgreSQL session-level advisory lock held on a dedicated
  connection for as long as the scheduler runs (a SQLite store: an fcntl lock file, one host); every other
  instance waits as a standby and takes over when the lock's holder dies, so APScheduler's job store is never
  used by two live schedulers (the APScheduler FAQ's rule);
- APScheduler's persistent job store in the state database, with `coalesce` and `misfire_grace_time`, so
  runs missed while no scheduler was up happen once on restart;
- our own job-run table: a run first inserts (claims) its (job id, trigger time) row, unique, so even a
  second scheduler started by mistake cannot run a trigger twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from creditbridge import CreditbridgeError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.logs import job_context
from creditbridge.records import mask_id_numbers
from creditbridge.reports.deadlines import deadline_warnings, log_warnings
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.job_ledger import JOB_IDS, last_run
from creditbridge.store.locks import FileLock, Lock, PostgresLock, lock_key, sqlite_lock_path
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.scheduler import JOBSTORE_TABLE, JobRun

log = logging.getLogger(__name__)

# Advisory-lock key, fixed so every instance of every version asks for the same lock. Positive (63 bits), so
# its halves read back from pg_locks (classid, objid: unsigned oids) compare without sign trouble.
LOCK_KEY = lock_key("creditbridge.scheduler")


class SchedulerError(CreditbridgeError):
    """A scheduler setting or request is wrong; the message names the setting or job."""


class JobSkipped(Exception):
    """Raised by a job that had nothing to do; the reason is logged and kept in the job-run row."""


class JobFailed(Exception):
    """Raised by a job whose flow reported failure without raising (an aborted sync): recorded as failed,
    with the counts it did produce."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    store: Store
    job_id: str
    scheduled_at: datetime
    run_id: int


JobFunc = Callable[[JobContext], "dict[str, Any] | None"]


@dataclass(frozen=True)
class JobSpec:
    id: str
    trigger: BaseTrigger
    # A textual reference ("module:function"): APScheduler pickles it into the job store.
    func: str
    name: str = ""


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scrub(message: str) -> str:
    """Mask any ID number an exception message might carry before it is logged or stored."""
    return mask_id_numbers(message)


def timezone_of(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise SchedulerError(f"scheduler.timezone: unknown time zone {settings.scheduler.timezone!r}") from e


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _standard_day_of_week(field: str) -> str:
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
            fields[4] = _standard_day_of_week(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=tz)
    except ValueError as e:
        raise SchedulerError(f"scheduler.{setting}: not a cron expression ({expr!r}): {e}") from e


def job_specs(settings: Settings) -> list[JobSpec]:
    """The configured jobs: cron expressions from [scheduler] in its time zone."""
    tz = timezone_of(settings)
    return [JobSpec(job_id, cron_trigger(getattr(settings.scheduler, job_id), tz, job_id),
                    f"{__name__}:{job_id}_job", job_id.replace("_", " "))
            for job_id in JOB_IDS]


# --- durable progress: the job-run table ---------------------------------------------------------------


def claim(store: Store, job_id: str, scheduled_at: datetime, instance: str, *, manual: bool = False) -> int | None:
    """Insert the (job, trigger time) row and commit. None when another run already claimed it."""
    try:
        with store.session() as s:
            run = JobRun(job_id=job_id, scheduled_at=scheduled_at.astimezone(UTC), started_at=utcnow(),
                         outcome="running", instance=instance, manual=manual)
            s.add(run)
            s.flush()
            return run.id
    except IntegrityError:
        return None


def finish(store: Store, run_id: int, outcome: str, counts: dict[str, Any] | None, error: str | None) -> None:
    # A flow may return Decimals or datetimes; the row must be written whatever it returned.
    counts = None if counts is None else json.loads(json.dumps(counts, default=str))
    with store.session() as s:
        s.execute(update(JobRun).where(JobRun.id == run_id)
                  .values(outcome=outcome, counts=counts, error=error, finished_at=utcnow()))


def interrupt_orphans(store: Store, instance: str) -> int:
    """Runs left `running` by an earlier holder of the lock: it is gone (the lock is free only then)."""
    with store.session() as s:
        # Manual runs (`--once`) belong to an operator's process, not to a scheduler: left alone.
        res = s.execute(update(JobRun).where(JobRun.outcome == "running", JobRun.instance != instance,
                                             JobRun.manual.is_(False))
                        .values(outcome="interrupted", finished_at=utcnow(),
                                error="the scheduler running it stopped before it finished"))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE answers a CursorResult


def run_as_json(r: JobRun) -> dict[str, Any]:
    return {"run_id": r.id, "job": r.job_id, "scheduled_at": r.scheduled_at.isoformat(),
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "outcome": r.outcome, "counts": r.counts, "error": r.error, "instance": r.instance, "manual": r.manual}


def run_claimed(settings: Settings, store: Store, job_id: str, scheduled_at: datetime, func: JobFunc, *,
                instance: str, manual: bool = False) -> dict[str, Any] | None:
    """Claim the trigger, run the job, record the outcome. None: this trigger was already claimed."""
    run_id = claim(store, job_id, scheduled_at, instance, manual=manual)
    if run_id is None:
        log.info("job %s for %s already claimed by another run; not running it again", job_id,
                 scheduled_at.isoformat())
        return None
    with job_context(job_id, run_id):  # its log lines carry the job and run id (JSON logs: logs.py)
        return _run_recorded(JobContext(settings, store, job_id, scheduled_at, run_id), func, instance)


def _run_recorded(ctx: JobContext, func: JobFunc, instance: str) -> dict[str, Any]:
    store, job_id, scheduled_at, run_id = ctx.store, ctx.job_id, ctx.scheduled_at, ctx.run_id
    counts: dict[str, Any] | None = None
    error: str | None = None
    try:
        counts = func(ctx) or {}
        outcome = "ok"
        log.info("job %s (%s) done: %s", job_id, scheduled_at.isoformat(), _short(counts))
    except JobSkipped as e:
        outcome, counts = "skipped", {"reason": scrub(str(e))}
        log.info("job %s (%s) skipped: %s", job_id, scheduled_at.isoformat(), counts["reason"])
    except JobFailed as e:
        outcome, counts, error = "failed", e.counts, scrub(str(e))
        log.error("job %s (%s) failed: %s", job_id, scheduled_at.isoformat(), error)
    except Exception as e:  # a failed job is recorded, and the scheduler goes on with the next trigger
        outcome, error = "failed", scrub(f"{type(e).__name__}: {e}")
        log.error("job %s (%s) failed: %s", job_id, scheduled_at.isoformat(), error)
        log.debug("job %s traceback", job_id, exc_info=True)
    finish(store, run_id, outcome, counts, error)
    return {"run_id": run_id, "job": job_id, "scheduled_at": scheduled_at.isoformat(), "outcome": outcome,
            "counts": counts, "error": error, "instance": instance}


def _short(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items() if isinstance(v, int | float | str | bool))[:300]


# --- the jobs ------------------------------------------------------------------------------------------


def _flow(module: str, attr: str) -> Any:
    """A function of another flow, imported when the job runs (those flows may be absent from a build)."""
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise JobSkipped(f"{module} is not installed in this build") from e
        raise


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _changed_file(ctx: JobContext, setting: str) -> tuple[Path, str]:
    raw = getattr(ctx.settings.scheduler, setting)
    if not raw:
        raise JobSkipped(f"scheduler.{setting} is not set")
    path = Path(raw)
    if not path.is_file():
        raise SchedulerError(f"scheduler.{setting}: file not found: {path}")
    digest = _file_digest(path)
    last = last_run(ctx.store, ctx.job_id, ("ok",))
    if last is not None and (last.counts or {}).get("file_sha256") == digest:
        raise JobSkipped(f"{path.name} unchanged since the run of {last.started_at:%Y-%m-%d %H:%M} UTC")
    return path, digest


def _sync_counts(outcome: Any) -> dict[str, Any]:
    doc = outcome.as_json() if hasattr(outcome, "as_json") else dict(outcome)
    counts = {k: v for k, v in doc.items() if isinstance(v, int | float | str | bool) or v is None}
    counts["errors"] = len(doc.get("errors") or [])
    return counts


def _process_inbox(ctx: JobContext) -> dict[str, int]:
    # Deliveries parked for a teacher or course the sync may just have created.
    process_pending = _flow("creditbridge.webhooks.processing", "process_pending")
    return process_pending(ctx.store, ctx.settings)


def _sync_job(ctx: JobContext, setting: str, service: str) -> dict[str, Any]:
    path, digest = _changed_file(ctx, setting)
    run = _flow("creditbridge.sync.service", service)
    result = run(ctx.settings, ctx.store, path)
    counts = _sync_counts(result)
    counts["file"] = str(path)
    aborted = getattr(result, "aborted", None)
    if aborted:  # Moodle failed mid-run; what went through is recorded, the next run finishes the job
        raise JobFailed(f"sync aborted: {aborted}", counts)
    # A held run (too many suspensions) did not apply the file: leave the digest out so it is tried again.
    if not counts.get("held"):
        counts["file_sha256"] = digest
    counts["inbox"] = _process_inbox(ctx)
    return counts


def catalog_sync_job(ctx: JobContext) -> dict[str, Any]:
    return _sync_job(ctx, "catalog_file", "sync_catalog")


def roster_sync_job(ctx: JobContext) -> dict[str, Any]:
    return _sync_job(ctx, "roster_file", "sync_roster")


def reconcile_job(ctx: JobContext) -> dict[str, Any]:
    reconcile = _flow("creditbridge.webhooks.reconcile", "reconcile")

    with MoodleClient(ctx.settings.moodle) as client:
        counts = dict(reconcile(ctx.settings, ctx.store, client))
    counts["inbox"] = _process_inbox(ctx)
    return counts


def evaluate_job(ctx: JobContext) -> dict[str, Any]:
    evaluate_store = _flow("creditbridge.mappings.service", "evaluate_store")
    return dict(evaluate_store(ctx.settings, ctx.store))


def push_job(ctx: JobContext) -> dict[str, Any]:
    push = _flow("creditbridge.outbox.service", "push")
    return dict(push(ctx.settings, ctx.store))


def deadline_warning_job(ctx: JobContext) -> dict[str, Any]:
    today = ctx.scheduled_at.astimezone(timezone_of(ctx.settings)).date()
    warnings = deadline_warnings(ctx.settings, ctx.store, today=today)
    log_warnings(warnings)
    active = [w for w in warnings if w["warning"]]
    return {"programmes": len(warnings), "warnings": len(active),
            "not_passed": sum(w["not_passed_total"] for w in active),
            "not_acknowledged": sum(w["not_acknowledged_total"] for w in active)}


# --- one active scheduler per store --------------------------------------------------------------------


# The leader lock's implementations live in store/locks.py, the one home of store locks (flows use them too).
LeaderLock = Lock


def lock_file_path(settings: Settings, store: Store) -> Path:
    if settings.scheduler.lock_file:
        return Path(settings.scheduler.lock_file)
    return sqlite_lock_path(store, ".scheduler.lock")


def leader_lock(settings: Settings, store: Store) -> LeaderLock:
    if store.is_postgres:
        return PostgresLock(store.engine, LOCK_KEY)
    if store.engine.dialect.name == "sqlite":
        return FileLock(lock_file_path(settings, store))
    raise SchedulerError(f"the scheduler needs PostgreSQL or SQLite, not {store.engine.dialect.name}")


def lock_holder(settings: Settings, store: Store) -> str | None:
    """Who runs the schedule now: a description of the lock when held by someone, None when free."""
    lock = leader_lock(settings, store)
    if lock.acquire():
        lock.release()
        return None
    if isinstance(lock, FileLock):
        with contextlib.suppress(OSError):
            return f"{lock.path.read_text(encoding='utf-8').strip() or 'unknown'} ({lock.describe()})"
    return lock.describe()


# --- APScheduler -----------------------------------------------------------------------------------------


class _StateJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the state store's engine. Its shutdown() would dispose that
    engine, which the running jobs and the lock's connection share: the store owns the engine, not it."""

    def __init__(self, store: Store) -> None:
        super().__init__(engine=store.engine, tablename=JOBSTORE_TABLE)

    def shutdown(self) -> None:
        pass


class _ClaimingExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, except that each run gets its trigger time and claims it first.

    APScheduler's own run_job calls the function without the run time, which is the key of our claim."""

    def __init__(self, run: Callable[[Job, datetime], None], max_workers: int) -> None:
        super().__init__(max_workers)
        self._run_one = run

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, f.result())

        self._pool.submit(self._run_all, job, run_times).add_done_callback(done)

    def _run_all(self, job: Job, run_times: list[datetime]) -> list[JobExecutionEvent]:
        events = []
        for run_time in run_times:
            # The same misfire rule as APScheduler's run_job: too late by more than the grace time, skip.
            late = datetime.now(UTC) - run_time
            if job.misfire_grace_time is not None and late > timedelta(seconds=job.misfire_grace_time):
                log.warning("job %s missed its %s run by %s (more than the grace time)", job.id, run_time, late)
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, run_time))
                continue
            try:
                self._run_one(job, run_time)
            except BaseException as e:
                events.append(JobExecutionEvent(EVENT_JOB_ERROR, job.id, job._jobstore_alias, run_time,
                                                exception=e))
                log.exception("job %s could not be run", job.id)
            else:
                events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time))
        return events


class CreditScheduler:
    """Waits as a standby until it holds the lock, then runs the schedule until stopped or the lock is lost."""

    def __init__(self, settings: Settings, store: Store, *, specs: list[JobSpec] | None = None,
                 lock: LeaderLock | None = None, instance: str | None = None) -> None:
        self.settings, self.store = settings, store
        self.specs = specs if specs is not None else job_specs(settings)
        self.lock = lock if lock is not None else leader_lock(settings, store)
        self.instance = instance or instance_name()
        self.tz = timezone_of(settings)
        self._stop = threading.Event()
        self.active = threading.Event()
        self.lock_losses = 0  # times the lock was taken away while active (observable by operators and tests)

    # The job store lives in the state database under its own table name, created by our migration.
    def _jobstore(self) -> SQLAlchemyJobStore:
        return _StateJobStore(self.store)

    def _build(self) -> tuple[BlockingScheduler, SQLAlchemyJobStore, _ClaimingExecutor]:
        jobstore = self._jobstore()
        executor = _ClaimingExecutor(self._run_job, self.settings.scheduler.max_workers)
        sched = BlockingScheduler(
            jobstores={"default": jobstore}, executors={"default": executor}, timezone=self.tz,
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": self.settings.scheduler.misfire_grace_seconds})
        return sched, jobstore, executor

    def _run_job(self, job: Job, run_time: datetime) -> None:
        run_claimed(self.settings, self.store, job.id, run_time, job.func, instance=self.instance)

    def install_jobs(self, sched: BlockingScheduler, jobstore: SQLAlchemyJobStore) -> list[dict[str, Any]]:
        """Add every configured job with its explicit id and replace_existing. A job whose trigger did not
        change keeps the next run time stored by the previous scheduler: replacing it would otherwise move
        that time past a run missed while no scheduler was up, and the run would be lost."""
        jobstore.start(sched, "default")  # read what the last active instance left, before re-adding
        stored = {j.id: j for j in jobstore.get_all_jobs()}
        wanted = {spec.id for spec in self.specs}
        for job_id in set(stored) - wanted:
            jobstore.remove_job(job_id)  # no longer configured
        installed = []
        for spec in self.specs:
            extra: dict[str, Any] = {}
            old = stored.get(spec.id)
            if old is not None and repr(old.trigger) == repr(spec.trigger) and old.next_run_time is not None:
                extra["next_run_time"] = old.next_run_time
            # args=(None,): APScheduler checks the stored call against the function's signature; the job's
            # one argument, its JobContext, exists only at run time and _ClaimingExecutor passes it then.
            sched.add_job(spec.func, args=(None,), trigger=spec.trigger, id=spec.id, name=spec.name or spec.id,
                          replace_existing=True, **extra)
            installed.append({"id": spec.id, "kept_next_run": "next_run_time" in extra})
        return installed

    def stop(self) -> None:
        """Ask the scheduler to stop; safe from a signal handler (the watchdog thread does the shutdown)."""
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
        orphans = interrupt_orphans(self.store, self.instance)
        sched, jobstore, executor = self._build()
        self.install_jobs(sched, jobstore)
        lost = threading.Event()
        check_every = self.settings.scheduler.lock_check_seconds

        def watch() -> None:
            last_check = time.monotonic()
            while not done.is_set():
                stopping = self._stop.wait(0.2)
                if not stopping and time.monotonic() - last_check >= check_every:
                    last_check = time.monotonic()
                    if not self.lock.still_held():
                        log.error("scheduler %s lost %s; stopping the schedule", self.instance, self.lock.describe())
                        lost.set()
                        stopping = True
                if stopping:
                    # shutdown() only works once start() is under way: keep asking until it is, or it is over.
                    while not done.is_set():
                        try:
                            sched.shutdown(wait=False)
                            return
                        except SchedulerNotRunningError:
                            time.sleep(0.05)
                    return

        done = threading.Event()
        watchdog = threading.Thread(target=watch, name="scheduler-lock-watch", daemon=True)
        log.info("scheduler active (%s) holding %s; %d interrupted run(s) of an earlier instance marked",
                 self.instance, self.lock.describe(), orphans)
        self.active.set()
        watchdog.start()
        try:
            sched.start()  # blocks until shutdown
        finally:
            done.set()
            # Let running jobs finish and record their outcome before the lock goes.
            executor.shutdown(wait=True)
            with contextlib.suppress(Exception):
                jobstore.shutdown()
            watchdog.join(2)
        if lost.is_set():
            self.lock_losses += 1
            log.warning("scheduler %s back to standby", self.instance)
        return lost.is_set()


def serve(settings: Settings, store: Store, *, specs: list[JobSpec] | None = None) -> None:
    """The `creditbridge scheduler` process: SIGTERM/SIGINT finish running jobs, release the lock, return."""
    sched = CreditScheduler(settings, store, specs=specs)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("scheduler %s: %s received, stopping", sched.instance, signal.Signals(signum).name)
        sched.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.run()


# --- operator views ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stored_jobs(settings: Settings, store: Store) -> Iterator[dict[str, Job]]:
    jobstore = _StateJobStore(store)
    jobstore.start(BlockingScheduler(timezone=timezone_of(settings)), "default")
    try:
        yield {j.id: j for j in jobstore.get_all_jobs()}
    finally:
        jobstore.shutdown()


def list_jobs(settings: Settings, store: Store) -> dict[str, Any]:
    """Configured jobs with their next run time (as stored by the active scheduler when the trigger is the
    same, otherwise from the trigger) and their last run."""
    specs = job_specs(settings)
    tz = timezone_of(settings)
    now = datetime.now(tz)
    with _stored_jobs(settings, store) as stored:
        rows = []
        for spec in specs:
            old = stored.get(spec.id)
            same = old is not None and repr(old.trigger) == repr(spec.trigger)
            nxt = old.next_run_time if same and old is not None else spec.trigger.get_next_fire_time(None, now)
            last = last_run(store, spec.id)
            rows.append({"id": spec.id, "cron": getattr(settings.scheduler, spec.id),
                         "next_run": nxt.astimezone(tz).isoformat() if nxt else None,
                         "stored": same, "last_run": run_as_json(last) if last else None})
    return {"timezone": str(tz), "active_scheduler": lock_holder(settings, store), "jobs": rows}


def run_once(settings: Settings, store: Store, job_id: str) -> dict[str, Any]:
    """Run one job now (an operator's `--once`), recorded like a scheduled run."""
    spec = next((s for s in job_specs(settings) if s.id == job_id), None)
    if spec is None:
        raise SchedulerError(f"unknown job {job_id!r}; jobs: {', '.join(JOB_IDS)}")
    module, _, attr = spec.func.partition(":")
    func = getattr(importlib.import_module(module), attr)
    result = run_claimed(settings, store, job_id, datetime.now(UTC), func, instance=instance_name(), manual=True)
    if result is None:  # same job, same microsecond: practically impossible, but never run twice
        raise SchedulerError(f"job {job_id} was just started by someone else")
    return result
