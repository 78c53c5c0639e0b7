"""The scheduler's run ledger, the one home of its reads and writes: the job ids, a run's claim of its
(job, trigger time), its outcome, runs left behind by a scheduler that died, and each job's last run.

The scheduler (scheduling/runs.py, scheduling/loop.py) writes it; `scheduler --list`, the metrics and the run
reports read it. Its home is beside the table, below every flow, so a reader such as the receiver's metrics
needs no import of the scheduler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError

from creditbridge.store import Store
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.scheduler import JobRun

# The jobs, in the order a night runs them. Each id is also the name of its cron setting in [scheduler].
JOB_IDS = ("catalog_sync", "roster_sync", "reconcile", "evaluate", "evaluate_all", "push", "deadline_warning")


def last_run(store: Store, job_id: str, outcomes: tuple[str, ...] | None = None) -> JobRun | None:
    with store.session() as s:
        q = select(JobRun).where(JobRun.job_id == job_id)
        if outcomes:
            q = q.where(JobRun.outcome.in_(outcomes))
        return s.scalars(q.order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()


def last_trigger(store: Store, job_id: str) -> datetime | None:
    """The latest trigger time a scheduler claimed for the job, whatever its outcome: the schedule goes on
    from there. An operator's `--once` is no trigger and does not count."""
    with store.session() as s:
        return s.scalar(select(func.max(JobRun.scheduled_at))
                        .where(JobRun.job_id == job_id, JobRun.manual.is_(False)))


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
    # A flow may return Decimals or datetimes; the row must be written whatever it returned. NaN and the
    # infinities are no JSON (PostgreSQL refuses the tokens): recorded as null.
    counts = None if counts is None else json.loads(json.dumps(counts, default=str), parse_constant=lambda _: None)
    with store.session() as s:
        s.execute(update(JobRun).where(JobRun.id == run_id)
                  .values(outcome=outcome, counts=counts, error=error, finished_at=utcnow()))


def _left_running(job_id: str | None = None, keep: int | None = None) -> ColumnElement[bool]:
    # Manual runs (`--once`) too: they hold their job's lock while they run, like a scheduler's. Not told apart
    # by instance name: a restarted container has the same host and pid as the life that left the run behind.
    cond = JobRun.outcome == "running"
    if job_id is not None:
        cond = cond & (JobRun.job_id == job_id)
    return cond if keep is None else cond & (JobRun.id != keep)


def running_jobs(store: Store) -> list[str]:
    """The jobs with a run (scheduled or `--once`) left `running` (live or dead: its job lock tells)."""
    with store.session() as s:
        return list(s.scalars(select(JobRun.job_id).where(_left_running()).distinct().order_by(JobRun.job_id)))


def interrupt_orphans(store: Store, job_id: str, *, keep: int | None = None) -> int:
    """Mark the job's runs (scheduled or `--once`) left `running`, but `keep` (the caller's own run),
    `interrupted`. Only for a job whose lock the caller holds (scheduling/runs.py): a run still going holds it,
    so these are dead, whatever process name they carry. `keep` is `running` again if it was marked: another
    holder of the lock can have marked it between its claim and its taking the lock, and it runs now."""
    with store.session() as s:
        if keep is not None:
            s.execute(update(JobRun).where(JobRun.id == keep, JobRun.outcome == "interrupted")
                      .values(outcome="running", finished_at=None, error=None))
        res = s.execute(update(JobRun).where(_left_running(job_id, keep))
                        .values(outcome="interrupted", finished_at=utcnow(),
                                error="the process running it stopped before it finished"))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE answers a CursorResult


def run_as_json(r: JobRun) -> dict[str, Any]:
    return {"run_id": r.id, "job": r.job_id, "scheduled_at": r.scheduled_at.isoformat(),
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "outcome": r.outcome, "counts": r.counts, "error": r.error, "instance": r.instance, "manual": r.manual}
