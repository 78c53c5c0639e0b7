"""One run of a job: its (job, trigger time) claimed in the ledger, the job run, its outcome recorded.

A failed job is recorded and logged, never raised: the scheduler goes on with the next trigger, and an
operator's `--once` reads the outcome from what this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from creditbridge.logs import job_context
from creditbridge.records import mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.job_ledger import claim, finish

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
