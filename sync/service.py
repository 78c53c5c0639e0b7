"""Sync entry points used by the CLI, the scheduler and the quickstart.

Each run: an id and a row in `sync_run`, read + validate + plan (sync-plan's modules), apply through
the Moodle client unless it is a dry run, a report (XLSX) under settings.sync.report_dir, and a
SyncOutcome whose `as_json()` is what `sync ... --json` prints.

A file that cannot be read raises SyncFileError (nothing synced). A topics file the rules refuse,
or a Moodle failure mid-run, does not raise: the outcome says `aborted` (with the reasons in
`errors`), the store keeps what Moodle took, and the next run finishes the job.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.input_limits import InputTooLarge
from creditbridge.programmes import programme_facts
from creditbridge.readers.exports import read_catalog, read_topics
from creditbridge.readers.table import ReadError
from creditbridge.readers.xlsx import end_read_ahead
from creditbridge.records.id_number import mask_id_numbers
from creditbridge.records.outfiles import OutputFileError
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.locks import flow_lock
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.sync import SyncRun
from creditbridge.sync import roster
from creditbridge.sync.apply import ApplyContext
from creditbridge.sync.courses import apply_catalog, plan_courses
from creditbridge.sync.moodle_users import require_username_key
from creditbridge.sync.outcome import (
    COUNT_KEYS,
    Progress,
    SyncAborted,
    SyncFileError,
    SyncOutcome,
    no_progress,
)
from creditbridge.sync.plan import (
    RosterPlan,
    TopicsRefused,
    load_known_courses,
    load_known_teachers,
    load_known_topics,
    plan_catalog,
    plan_roster_file,
    plan_topics,
)
from creditbridge.sync.profile_fields import ProfileFields
from creditbridge.sync.report import report_path, write_report
from creditbridge.sync.roster import apply_accounts, finish_teachers, plan_lines
from creditbridge.sync.topics import catalog_topics, store_topics, topic_plan_lines
from creditbridge.sync.validation import validate_catalog, validate_topics

ClientFactory = Callable[[Settings], MoodleClient]
# Besides the readers' own ReadError: what a file that is not what its name says raises from deep in the
# standard library (a .xlsx that is no zip archive, a CSV in an unexpected encoding).
# InputTooLarge: a file beyond a bound of [limits] (a resource bomb, or the wrong file) is refused the same way.
UNREADABLE: tuple[type[Exception], ...] = (OSError, UnicodeError, zipfile.BadZipFile, InputTooLarge)
_BAD_INPUT: tuple[type[Exception], ...] = (ReadError, *UNREADABLE)  # what reading a bad input file raises

__all__ = ["SyncAborted", "SyncFileError", "SyncOutcome", "sync_catalog", "sync_roster", "sync_topics"]


def _default_client(settings: Settings) -> MoodleClient:
    return MoodleClient(settings.moodle)


@contextmanager
def _run(settings: Settings, store: Store, outcome: SyncOutcome, *, delta: bool = False, force: bool = False,
         client_factory: ClientFactory | None = None, progress: Progress | None = None
         ) -> Iterator[Callable[[], ApplyContext]]:
    """Record the run, hand out an ApplyContext (the client is made on first use), always finish the
    run's row and report, also when the body raises."""
    started = utcnow()
    with store.session() as s:
        run = SyncRun(kind=outcome.kind, programme=outcome.programme, file=outcome.file, started_at=started,
                      dry_run=outcome.dry_run, delta=delta, force=force, outcome="running", plan_counts={},
                      counts={}, errors=[])
        s.add(run)
        s.flush()
        outcome.run_id = run.id
    holder: list[ApplyContext] = []

    def context() -> ApplyContext:
        if not holder:
            client = (client_factory or _default_client)(settings)
            holder.append(ApplyContext(settings, store, client, outcome, outcome.programme,
                                       progress or no_progress, client_factory=client_factory or _default_client))
        return holder[0]

    try:
        try:
            yield context
        except (SyncAborted, MoodleError) as e:
            outcome.aborted = str(e)
            outcome.error(None, "", f"run stopped: {e}")
    except BaseException as e:
        outcome.aborted = outcome.aborted or f"{type(e).__name__}: {e}"
        raise
    finally:
        if holder:
            outcome.lms_calls = holder[0].write_calls
            holder[0].close()
        _finish(settings, store, outcome, started)


@contextmanager
def _locked_run(settings: Settings, store: Store, outcome: SyncOutcome, *, wait: bool = False, **kw: Any
                ) -> Iterator[Callable[[], ApplyContext]]:
    """`_run` under the sync lock of the store: catalog, topics and roster share one lock, since each of them
    ends by enrolling teachers (finish_teachers) in the same Moodle courses and store tables. Taken before the
    run's row is written, so a refused run leaves no trace in `sync runs`. A dry run writes nothing but its
    own row: it takes no lock, so a plan can be looked at while a run goes on."""
    # A sheet reader started ahead (read_ahead, `sync roster`) is ended if the run must wait for the lock.
    lock = nullcontext() if outcome.dry_run else flow_lock(store, "sync", f"sync {outcome.kind}", wait=wait,
                                                           on_wait=end_read_ahead)
    with lock, _run(settings, store, outcome, **kw) as context:
        yield context


def _mark_results(outcome: SyncOutcome) -> None:
    """The plan sheet's last column: what became of each planned action."""
    if outcome.dry_run:
        return
    refused = {e.row for e in outcome.errors if e.row is not None}
    for line in outcome.plan:
        if line.row is not None and line.row in refused:
            line.result = "refused (see errors)"
        elif outcome.aborted:
            line.result = "not confirmed: the run stopped (the next run finishes it)"
        else:
            line.result = "done"


def _finish(settings: Settings, store: Store, outcome: SyncOutcome, started: datetime) -> None:
    finished = utcnow()
    if outcome.aborted:  # may quote an exception (a database error repeats the key value): report and row
        outcome.aborted = mask_id_numbers(outcome.aborted)
    _mark_results(outcome)
    path = report_path(settings.sync.report_dir, outcome, finished)
    try:
        outcome.report = str(write_report(outcome, path, started_at=started, finished_at=finished,
                                          language=settings.report.language))
    except (OSError, OutputFileError) as e:  # a report that cannot be written must not hide what the run did
        outcome.notes.append(f"report not written: {e}")
    except Exception as e:  # whatever the writer raises (a text openpyxl refuses), the run is closed
        outcome.notes.append(mask_id_numbers(f"report not written: {type(e).__name__}: {e}"))
    with store.session() as s:
        run = s.get(SyncRun, outcome.run_id)
        if run is not None:
            run.finished_at = finished
            run.outcome = outcome.outcome
            run.plan_counts = dict(outcome.plan_counts)
            run.counts = {k: v for k, v in outcome.as_json().items() if k in COUNT_KEYS}
            if outcome.errors_omitted:
                run.counts["errors_omitted"] = outcome.errors_omitted
            run.errors = [e.as_json() for e in outcome.errors]  # at most limits.max_errors
            run.report_path = outcome.report


def _read_error(outcome: SyncOutcome, e: Exception, path: str | Path) -> SyncFileError:
    if isinstance(e, FileNotFoundError):
        error = SyncFileError(f"{path}: no such file")
    elif isinstance(e, IsADirectoryError | PermissionError):
        error = SyncFileError(f"{path}: cannot be read ({type(e).__name__})")
    elif isinstance(e, zipfile.BadZipFile):
        error = SyncFileError(f"{Path(path).name}: cannot be opened as an XLSX workbook (not a zip archive)")
    elif isinstance(e, UnicodeError):
        error = SyncFileError(f"{Path(path).name}: cannot be decoded ({e})")
    else:
        error = SyncFileError(str(e))
    outcome.aborted = str(error)
    outcome.error(None, "", str(error))
    return error


def _add_errors(outcome: SyncOutcome, errors: object) -> None:
    for e in errors:  # type: ignore[attr-defined]
        outcome.error(e.row, e.column, e.reason)


def sync_catalog(settings: Settings, store: Store, path: str | Path, *, dry_run: bool = False,
                 progress: Progress | None = None, client_factory: ClientFactory | None = None,
                 wait: bool = False) -> SyncOutcome:
    """Categories and courses from a catalog file; then enrolments the new courses call for."""
    programme = settings.sync.programme
    rules = programme_facts(programme)  # before the run is recorded: a broken rule file stops it, listed
    outcome = SyncOutcome("catalog", str(path), programme, dry_run, max_errors=settings.limits.max_errors)
    with _locked_run(settings, store, outcome, wait=wait, client_factory=client_factory,
                     progress=progress) as context:
        try:
            courses, errors = validate_catalog(read_catalog(path, settings.sync.header_map, settings.limits))
        except _BAD_INPUT as e:
            raise _read_error(outcome, e, path) from e
        _add_errors(outcome, errors)
        with store.session() as s:
            plan = plan_catalog(courses, load_known_courses(s, programme), errors)
        if plan.missing:
            outcome.notes.append(f"{len(plan.missing)} course(s) in the store are no longer in the catalog file "
                                 f"(kept, never deleted): {', '.join(plan.missing[:20])}")
        if dry_run:
            _dry_catalog(outcome, courses, store, programme)
        else:
            ctx = context()
            apply_catalog(ctx, courses, rules.name)
            finish_teachers(ctx, rules)
    return outcome


def _dry_catalog(outcome: SyncOutcome, courses: list, store: Store, programme: str) -> None:
    plan_courses(outcome, store, programme, courses)
    outcome.created = outcome.plan_counts.get("create", 0)
    outcome.updated = outcome.plan_counts.get("update", 0)


def sync_topics(settings: Settings, store: Store, path: str | Path, *, dry_run: bool = False,
                progress: Progress | None = None, client_factory: ClientFactory | None = None,
                wait: bool = False) -> SyncOutcome:
    """Schools' topic choices (refused whole when a school breaks the rules), then elective enrolments.

    Counts: created = choices added, updated = choices withdrawn, unchanged = schools whose choice stayed.
    """
    programme = settings.sync.programme
    # Before the run is recorded: a broken rule file stops it, its problems listed.
    rules = programme_facts(programme)
    outcome = SyncOutcome("topics", str(path), programme, dry_run, max_errors=settings.limits.max_errors)
    with _locked_run(settings, store, outcome, wait=wait, client_factory=client_factory,
                     progress=progress) as context:
        try:
            table = read_topics(path, settings.sync.header_map, settings.limits)
            rows, errors = validate_topics(table)
        except _BAD_INPUT as e:
            raise _read_error(outcome, e, path) from e
        with store.session() as s:
            known = load_known_topics(s, programme)
        try:
            plan = plan_topics(rows, known, limits=rules,
                               known_topics=catalog_topics(store, programme), errors=errors,
                               column=table.column("school"), topic_column=table.column("topic"))
        except TopicsRefused as e:
            _add_errors(outcome, errors)
            _add_errors(outcome, e.errors)
            outcome.aborted = f"topics file refused: school(s) {', '.join(e.schools)} break the programme's rules"
            return outcome
        _add_errors(outcome, plan.errors)
        outcome.plan = topic_plan_lines(plan)
        outcome.plan_counts = {"add": len(plan.added), "withdraw": len(plan.removed), "unchanged": plan.unchanged}
        outcome.created, outcome.updated, outcome.unchanged = len(plan.added), len(plan.removed), plan.unchanged
        if not dry_run:
            store_topics(store, programme, plan)
            finish_teachers(context(), rules)
    return outcome


def sync_roster(settings: Settings, store: Store, path: str | Path, *, dry_run: bool = False, delta: bool = False,
                force: bool = False, progress: Progress | None = None,
                client_factory: ClientFactory | None = None, wait: bool = False) -> SyncOutcome:
    """Accounts, profile fields, cohorts, enrolments and lesson cases from a roster export."""
    if not dry_run:
        # Before the run is recorded: without a key no account may be named (a dry run names none).
        require_username_key(settings.sync)
    programme = settings.sync.programme
    rules = programme_facts(programme)  # before the run is recorded: a broken rule file stops it, listed
    outcome = SyncOutcome("roster", str(path), programme, dry_run, max_errors=settings.limits.max_errors)
    with _locked_run(settings, store, outcome, wait=wait, delta=delta, force=force,
                     client_factory=client_factory, progress=progress) as context:
        (progress or no_progress)("reading", 0, 0)
        # A dry run's plan sheet: its lines (and one more, to know there are more) kept by the planning pass
        # itself rather than read again; apply fills the sheet as it carries the actions out.
        # roster.PLAN_LINES_MAX read here, not bound at import: the sheet (roster.plan_lines) and this head are
        # one limit, also when a test lowers it.
        lines_head = roster.PLAN_LINES_MAX + 1 if dry_run else 0

        def make_plan() -> RosterPlan:
            known = load_known_teachers(store.engine, programme)
            return plan_roster_file(path, known, programme=programme, header_map=settings.sync.header_map,
                                    delta=delta, force=force, suspend_threshold=settings.sync.suspend_threshold,
                                    limits=settings.limits, head=lines_head, list_only=dry_run)

        try:
            plan = make_plan()
        except _BAD_INPUT as e:
            raise _read_error(outcome, e, path) from e
        fields = None if dry_run else ProfileFields(context())
        if fields is not None and fields.before_plan():
            plan = make_plan()  # profile fields the site gained since: every account is updated to fill them
        (progress or no_progress)("reading", plan.rows_read, plan.rows_read)
        _add_errors(outcome, plan.errors)
        outcome.errors_omitted += plan.errors_omitted
        outcome.plan_counts = {**plan.counts, "held": plan.held}
        outcome.unchanged = plan.counts.get("unchanged", 0)
        outcome.held = plan.held
        if plan.held:
            outcome.notes.append(
                f"{plan.held} suspension(s) held back: more than {settings.sync.suspend_threshold:.0%} of the "
                f"{plan.known_active} known active teachers would be suspended "
                f"({'a delta marking too many leavers' if delta else 'a truncated export'}?). Creates "
                "and updates were applied; run again with --force to suspend them.")
        if dry_run:
            plan_lines(_DryContext(outcome), plan.first_actions(lines_head))  # type: ignore[arg-type]
            for key, name in (("create", "created"), ("update", "updated"), ("transfer", "transferred"),
                              ("suspend", "suspended"), ("reactivate", "reactivated")):
                setattr(outcome, name, plan.counts.get(key, 0))
            return outcome
        ctx = context()
        rows_by_teacher = apply_accounts(ctx, plan)
        if fields is not None:
            fields.after_apply(rows_by_teacher)
        finish_teachers(ctx, rules, rows_by_teacher)
    return outcome


class _DryContext:
    def __init__(self, outcome: SyncOutcome) -> None:
        self.outcome = outcome


def list_runs(store: Store, *, limit: int = 50) -> list[dict[str, Any]]:
    with store.session() as s:
        runs = s.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)).all()
        return [{"run_id": r.id, "kind": r.kind, "programme": r.programme, "file": r.file,
                 "started_at": r.started_at.isoformat() if r.started_at else None,
                 "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                 "dry_run": r.dry_run, "delta": r.delta, "force": r.force, "outcome": r.outcome,
                 "plan": r.plan_counts, "counts": r.counts,
                 "errors": len(r.errors or []) + int((r.counts or {}).get("errors_omitted", 0)),
                 "report": r.report_path} for r in runs]
