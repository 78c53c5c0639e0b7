"""One run of a job: its (job, trigger time) claimed in the ledger, the job run, its outcome recorded.

A failed job is recorded and logged, never raised: the scheduler goes on with the next trigger, and an
operator's `--once` reads the outcome from what this returns.

A scheduled run holds its job's lock (store/locks.py `job_lock_for`) from its claim until its outcome is
recorded. A scheduler that loses the leader lock lets its running jobs finish; their job locks then keep the
instance that takes over from starting the same job beside them (that trigger is recorded `skipped`, with the
holder), and from marking them `interrupted`: a `running` row is marked only when its job's lock is free, that
is when the process that ran it is gone (PostgreSQL drops the lock with the session, the kernel the lock file's
with the process, SIGKILL included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from creditbridge import CreditbridgeError
from creditbridge.logs import job_context
from creditbridge.records import mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.job_ledger import claim, finish, interrupt_orphans, running_jobs
from creditbridge.store.locks import FileLock, PostgresLock, describe_holder, job_lock_for

log = logging.getLogger("creditbridge.scheduler")  # operators filter the scheduler's lines by this name


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


def scrub(message: str) -> str:
    """Mask any ID number an exception message might carry before it is logged or stored."""
    return mask_id_numbers(message)


def run_claimed(settings: Settings, store: Store, job_id: str, scheduled_at: datetime, func: JobFunc, *,
                instance: str, manual: bool = False) -> dict[str, Any] | None:
    """Claim the trigger, run the job, record the outcome. None: this trigger was already claimed.

    The run holds its job's lock, a scheduled run and an operator's `--once` (`manual`) alike: when another
    process's run of the job still holds it, this one is recorded `skipped`, not run; and a run left `running` by
    a process that died (its lock freed with it) is marked `interrupted` by the next run of the job or by a
    scheduler becoming active (interrupt_dead_runs)."""
    run_id = claim(store, job_id, scheduled_at, instance, manual=manual)
    if run_id is None:
        log.info("job %s for %s already claimed by another run; not running it again", job_id,
                 scheduled_at.isoformat())
        return None
    ctx = JobContext(settings, store, job_id, scheduled_at, run_id)
    with job_context(job_id, run_id):  # its log lines carry the job and run id (JSON logs: logs.py)
        lock = job_lock_for(store, job_id, f"job {job_id}")
        if lock is None:  # an in-memory SQLite store: no other process can run its jobs
            return _run_recorded(ctx, func, instance)
        try:
            try:
                acquired = lock.acquire()
            except OSError as e:  # the lock file cannot be opened: a failed run, not one left `running`
                return _run_recorded(ctx, _unlockable(lock, e), instance)
            if not acquired:
                return _run_recorded(ctx, _refused(lock), instance)
            # Held now, so a run of this job another instance left `running` is dead (a live one holds the lock).
            # Between its claim and now, another holder may have taken this run's own row for one of those.
            interrupt_orphans(store, job_id, keep=run_id)
            return _run_recorded(ctx, func, instance)
        finally:
            lock.release()


def _refused(lock: PostgresLock | FileLock) -> JobFunc:
    """The job run in place of one whose job lock is held elsewhere: says by whom, as a skip."""

    def refuse(ctx: JobContext) -> None:
        unreachable = getattr(lock, "last_error", None)  # only a PostgreSQL lock can fail to ask
        if unreachable:
            raise CreditbridgeError(f"cannot take the job's lock: the database is unreachable ({unreachable})")
        who, detail = describe_holder(lock.holder())
        log.warning("job %s: its %s run skipped, the previous run is still going in another instance (%s, %s)",
                    ctx.job_id, ctx.scheduled_at.isoformat(), who, detail)
        raise JobSkipped(f"the previous run is still going in another instance ({who}, {detail})")

    return refuse


def _unlockable(lock: PostgresLock | FileLock, error: OSError) -> JobFunc:
    """The job run in place of one whose job lock cannot even be asked for: says why, as a failure."""

    def fail(ctx: JobContext) -> None:
        raise CreditbridgeError(f"cannot take the job's lock ({lock.describe()}): {error.strerror or error}")

    return fail


def interrupt_dead_runs(store: Store) -> int:
    """Mark `interrupted` the runs left `running` whose job's lock is free: the process running them is gone (a
    scheduler becoming active has none of its own going). A run whose lock is held still goes (its scheduler
    lost the leader lock, not its life) and records its own outcome. Returns how many were marked."""
    marked = 0
    for job_id in running_jobs(store):
        lock = job_lock_for(store, job_id, f"job {job_id}")
        try:
            if lock is None or _try_acquire(lock):
                marked += interrupt_orphans(store, job_id)
            else:
                log.info("job %s: a run of another instance still goes (it holds the job's lock); left to finish",
                         job_id)
        finally:
            if lock is not None:
                lock.release()
    return marked


def _try_acquire(lock: PostgresLock | FileLock) -> bool:
    try:
        return lock.acquire()
    except OSError as e:  # its lock file cannot be opened: the run is left as it is, the scheduler goes on
        log.warning("%s cannot be taken (%s): runs of its job left running are not marked", lock.describe(), e)
        return False


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
