"""The scheduler: the jobs that run the pipeline (pipeline.py) and the deadline warnings on cron schedules, in a
process of its own (`creditbridge scheduler`, or a child of `creditbridge run`), never inside a web worker.

This module is the list of jobs and the operator's views of them (`--list`, `--once`). The machinery is in
`creditbridge.scheduling`: the cron settings as triggers (`cron`), one active scheduler per store (`leader`),
one run claimed and recorded in the job-run ledger (`runs`, `store/job_ledger.py`) and the leader loop that
fires the jobs (`loop`). Three layers keep every trigger to one run: the leader lock, the ledger's unique
(job, trigger time) claim, and the schedule resuming from the ledger after a restart (docs/scheduler.md).
"""

from __future__ import annotations

import hashlib
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from creditbridge.pipeline import CATALOG, EVALUATE, PUSH, RECONCILE, ROSTER, Step, StepInput
from creditbridge.reports.deadlines import deadline_warnings, log_warnings
from creditbridge.scheduling.cron import SchedulerError, coalesce, cron_trigger, first_due, timezone_of
from creditbridge.scheduling.leader import LOCK_KEY, instance_name, lock_holder
from creditbridge.scheduling.loop import CreditScheduler, JobSpec
from creditbridge.scheduling.runs import JobContext, JobFailed, JobFunc, JobSkipped, run_claimed
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.job_ledger import JOB_IDS, last_run, last_trigger, run_as_json
from creditbridge.sync.outcome import SyncOutcome
from creditbridge.webhooks.processing import process_pending

# What the CLI, the runner and the tests take from here.
__all__ = ["JOBS", "JOB_IDS", "LOCK_KEY", "SchedulerError", "job_specs", "list_jobs", "lock_holder", "run_claimed",
           "run_once", "serve"]

log = logging.getLogger(__name__)


# --- the jobs, each the function a trigger runs ----------------------------------------------------------


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


def _sync_counts(outcome: SyncOutcome) -> dict[str, Any]:
    doc = outcome.as_json()
    counts = {k: v for k, v in doc.items() if isinstance(v, int | float | str | bool) or v is None}
    counts["errors"] = len(doc.get("errors") or [])
    return counts


def _process_inbox(ctx: JobContext) -> dict[str, int]:
    # Deliveries parked for a teacher or course the sync may just have created.
    return process_pending(ctx.settings, ctx.store).as_json()


def _sync_job(ctx: JobContext, step: Step[SyncOutcome], setting: str) -> dict[str, Any]:
    path, digest = _changed_file(ctx, setting)
    result = step.run(ctx.settings, ctx.store, StepInput(file=path))
    counts = _sync_counts(result)
    counts["file"] = str(path)
    if result.aborted:  # Moodle failed mid-run; what went through is recorded, the next run finishes the job
        raise JobFailed(f"sync aborted: {result.aborted}", counts)
    # A held run (too many suspensions) did not apply the file: leave the digest out so it is tried again.
    if not counts.get("held"):
        counts["file_sha256"] = digest
    counts["inbox"] = _process_inbox(ctx)
    return counts


def catalog_sync_job(ctx: JobContext) -> dict[str, Any]:
    return _sync_job(ctx, CATALOG, "catalog_file")


def roster_sync_job(ctx: JobContext) -> dict[str, Any]:
    return _sync_job(ctx, ROSTER, "roster_file")


def reconcile_job(ctx: JobContext) -> dict[str, Any]:
    counts = RECONCILE.run(ctx.settings, ctx.store, StepInput()).as_json()
    counts["inbox"] = _process_inbox(ctx)
    return counts


def _continuous(ctx: JobContext) -> bool:
    return ctx.settings.pipeline.mode == "continuous"


def evaluate_job(ctx: JobContext) -> dict[str, Any]:
    """Scheduled mode: a full run. Continuous mode: the safety net behind the workers, so incremental (what
    they left marked), waiting for the batch in hand rather than failing on it."""
    if _continuous(ctx):
        return EVALUATE.run(ctx.settings, ctx.store, StepInput(incremental=True, wait=True)).as_json()
    return EVALUATE.run(ctx.settings, ctx.store, StepInput()).as_json()


def evaluate_all_job(ctx: JobContext) -> dict[str, Any]:
    """Continuous mode: the nightly full pass (`credits evaluate --all`). Scheduled mode: `evaluate` is one."""
    if not _continuous(ctx):
        raise JobSkipped("pipeline.mode is scheduled: the evaluate job is a full run")
    return EVALUATE.run(ctx.settings, ctx.store, StepInput(wait=True)).as_json()


def push_job(ctx: JobContext) -> dict[str, Any]:
    return PUSH.run(ctx.settings, ctx.store, StepInput(wait=_continuous(ctx))).as_json()


def deadline_warning_job(ctx: JobContext) -> dict[str, Any]:
    today = ctx.scheduled_at.astimezone(timezone_of(ctx.settings)).date()
    warnings = deadline_warnings(ctx.settings, ctx.store, today=today)
    log_warnings(warnings)
    active = [w for w in warnings if w["warning"]]
    return {"programmes": len(warnings), "warnings": len(active),
            "not_passed": sum(w["not_passed_total"] for w in active),
            "not_acknowledged": sum(w["not_acknowledged_total"] for w in active)}


# Every job, in the order a night runs them (JOB_IDS, the ledger's list); each id names its cron setting in
# [scheduler]. The pipeline's jobs come in the pipeline's order.
JOBS: dict[str, JobFunc] = {
    "catalog_sync": catalog_sync_job,
    "roster_sync": roster_sync_job,
    "reconcile": reconcile_job,
    "evaluate": evaluate_job,
    "evaluate_all": evaluate_all_job,
    "push": push_job,
    "deadline_warning": deadline_warning_job,
}


def job_specs(settings: Settings) -> list[JobSpec]:
    """The configured jobs: cron expressions from [scheduler] in its time zone."""
    tz = timezone_of(settings)
    return [JobSpec(job_id, cron_trigger(getattr(settings.scheduler, job_id), tz, job_id), JOBS[job_id],
                    job_id.replace("_", " "))
            for job_id in JOB_IDS]


# --- the process and the operator's views ------------------------------------------------------------------


def serve(settings: Settings, store: Store, *, specs: list[JobSpec] | None = None) -> None:
    """The `creditbridge scheduler` process: SIGTERM/SIGINT finish running jobs, release the lock, return."""
    sched = CreditScheduler(settings, store, specs=specs if specs is not None else job_specs(settings))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler %s: %s received, stopping", sched.instance, signal.Signals(signum).name)
        sched.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.run()


def list_jobs(settings: Settings, store: Store) -> dict[str, Any]:
    """Configured jobs with their next run time and their last run. `stored`: the next run follows the last
    scheduled run in the ledger (a run missed while no scheduler was up, within the grace time, shows as due
    in the past: the next active scheduler runs it at once)."""
    tz = timezone_of(settings)
    now = datetime.now(UTC)  # instants: see scheduling/loop.py
    grace = timedelta(seconds=settings.scheduler.misfire_grace_seconds)
    rows = []
    for spec in job_specs(settings):
        previous = last_trigger(store, spec.id)
        nxt = first_due(spec.trigger, previous, now)
        if nxt is not None and nxt <= now:
            run_at, after = coalesce(spec.trigger, nxt, now, grace)
            nxt = run_at if now - run_at <= grace else after
        last = last_run(store, spec.id)
        rows.append({"id": spec.id, "cron": getattr(settings.scheduler, spec.id),
                     "next_run": nxt.astimezone(tz).isoformat() if nxt else None,
                     "stored": previous is not None, "last_run": run_as_json(last) if last else None})
    return {"timezone": str(tz), "active_scheduler": lock_holder(settings, store), "jobs": rows}


def run_once(settings: Settings, store: Store, job_id: str) -> dict[str, Any]:
    """Run one job now (an operator's `--once`), recorded like a scheduled run."""
    # From the configured specs, so a bad cron setting or time zone is refused here as when the scheduler starts.
    spec = next((s for s in job_specs(settings) if s.id == job_id), None)
    if spec is None:
        raise SchedulerError(f"unknown job {job_id!r}; jobs: {', '.join(JOB_IDS)}")
    result = run_claimed(settings, store, job_id, datetime.now(UTC), spec.func, instance=instance_name(),
                         manual=True)
    if result is None:  # same job, same microsecond: practically impossible, but never run twice
        raise SchedulerError(f"job {job_id} was just started by someone else")
    return result
