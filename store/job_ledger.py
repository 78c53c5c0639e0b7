"""The scheduler's run ledger as its readers see it: the job ids and each job's last recorded run.

The scheduler writes the ledger (claims and outcomes, scheduler.py); `scheduler --list`, the metrics and the
run reports read it. Its home is beside the table, below every flow, so a reader such as the receiver's
metrics needs no import of the scheduler.
"""

from __future__ import annotations

from sqlalchemy import select

from creditbridge.store import Store
from creditbridge.store.models.scheduler import JobRun

# The jobs, in the order a night runs them. Each id is also the name of its cron setting in [scheduler].
JOB_IDS = ("catalog_sync", "roster_sync", "reconcile", "evaluate", "push", "deadline_warning")


def last_run(store: Store, job_id: str, outcomes: tuple[str, ...] | None = None) -> JobRun | None:
    with store.session() as s:
        q = select(JobRun).where(JobRun.job_id == job_id)
        if outcomes:
            q = q.where(JobRun.outcome.in_(outcomes))
        return s.scalars(q.order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
