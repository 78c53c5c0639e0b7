"""The pipeline, declared once: the order in which one pass carries a province's data to the registry.

    catalog sync -> topics sync -> roster sync -> reconcile -> evaluate -> push

- The scheduler runs each step that has a `job` on that job's cron (scheduler.py); the default times follow
  this order through the night, and a test holds them to it. Topic choices have no job of their own (an
  operator's `sync topics`).
- The quickstart runs every step in this order, its simulated school term between the sync and reconcile.
- The continuous worker (runner/worker.py) runs the steps marked `continuous` (CONTINUOUS: evaluate, then push),
  each round, in this order, as micro-batches of marked teachers and open submissions.

Each step's `run` takes the same three arguments, so a caller needs no knowledge of a flow's own keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from creditbridge.connector.moodle import MoodleClient
from creditbridge.mappings.service import EvaluateResult, evaluate_store
from creditbridge.outbox.service import PushResult, push
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.sync.outcome import Progress, SyncOutcome
from creditbridge.sync.service import sync_catalog, sync_roster, sync_topics
from creditbridge.webhooks.reconcile import ReconcileResult, reconcile

R = TypeVar("R")


@dataclass(frozen=True)
class StepInput:
    """What the caller gives a step beyond settings and store; each step reads the fields it needs."""

    file: Path | None = None  # a sync step: the file it reads
    progress: Progress | None = None  # a sync step: (stage, done, total)
    advance: Callable[[int], None] | None = None  # evaluate: teachers done; push: a batch sent
    programme: str | None = None  # evaluate: this programme only (None: every programme in the store)
    incremental: bool = False  # evaluate: only the teachers marked since (the continuous safety net)
    wait: bool = False  # wait for the flow's lock rather than fail when another run holds it


@dataclass(frozen=True)
class Step(Generic[R]):
    key: str
    title: str  # what the quickstart shows while the step runs
    job: str | None  # the scheduler job (and its cron setting) that runs the step; None: no job of its own
    run: Callable[[Settings, Store, StepInput], R]
    continuous: bool = False  # continuous mode's worker runs it each round, as a micro-batch (runner/worker.py)


def _file(step: str, given: StepInput) -> Path:
    if given.file is None:
        raise ValueError(f"the {step} step needs a file")  # a caller's bug: every caller of a sync step has one
    return given.file


def _catalog(settings: Settings, store: Store, given: StepInput) -> SyncOutcome:
    return sync_catalog(settings, store, _file("catalog", given), progress=given.progress, wait=given.wait)


def _topics(settings: Settings, store: Store, given: StepInput) -> SyncOutcome:
    return sync_topics(settings, store, _file("topics", given), progress=given.progress, wait=given.wait)


def _roster(settings: Settings, store: Store, given: StepInput) -> SyncOutcome:
    return sync_roster(settings, store, _file("roster", given), progress=given.progress, wait=given.wait)


def _reconcile(settings: Settings, store: Store, given: StepInput) -> ReconcileResult:
    with MoodleClient(settings.moodle) as client:
        return reconcile(settings, store, client)


def _evaluate(settings: Settings, store: Store, given: StepInput) -> EvaluateResult:
    return evaluate_store(settings, store, programme=given.programme, progress=given.advance,
                          incremental=given.incremental, wait=given.wait)


def _push(settings: Settings, store: Store, given: StepInput) -> PushResult:
    return push(settings, store, on_batch=given.advance, wait=given.wait)


CATALOG: Step[SyncOutcome] = Step("catalog", "Sync the course catalog into the LMS", "catalog_sync", _catalog)
TOPICS: Step[SyncOutcome] = Step("topics", "Sync the schools' elective topics", None, _topics)
ROSTER: Step[SyncOutcome] = Step("roster", "Sync the roster: users, cohorts, enrolments, lesson cases",
                                 "roster_sync", _roster)
RECONCILE: Step[ReconcileResult] = Step("reconcile", "Reconcile with the LMS (catches missed webhooks)",
                                        "reconcile", _reconcile)
EVALUATE: Step[EvaluateResult] = Step("evaluate", "Evaluate credits", "evaluate", _evaluate, continuous=True)
PUSH: Step[PushResult] = Step("push", "Push credit records to the registry, exactly once", "push", _push,
                              continuous=True)

PIPELINE: tuple[Step[Any], ...] = (CATALOG, TOPICS, ROSTER, RECONCILE, EVALUATE, PUSH)
SYNC_STEPS: tuple[Step[SyncOutcome], ...] = (CATALOG, TOPICS, ROSTER)
# What continuous mode's worker runs each round: the pipeline's continuous steps, in the pipeline's order.
CONTINUOUS: tuple[Step[Any], ...] = tuple(step for step in PIPELINE if step.continuous)
