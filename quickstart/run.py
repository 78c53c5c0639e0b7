"""`creditbridge quickstart`: the whole main job on the embedded defaults, in one process, in under a minute.

A synthetic province goes through every flow the way production data does: files -> sync into the
sandbox LMS -> teachers complete courses there -> signed webhooks into the receiver -> learning records
-> reconciliation -> credit evaluation -> push to the registry simulator -> report. Nothing is faked
between the pieces: each talks HTTP to the next on 127.0.0.1.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select

from creditbridge import CreditbridgeError
from creditbridge.mappings.service import EvaluateResult
from creditbridge.outbox.service import PushResult
from creditbridge.pipeline import EVALUATE, PIPELINE, PUSH, RECONCILE, SYNC_STEPS, Step, StepInput
from creditbridge.quickstart.completions import (
    WINDOW_START,
    Completion,
    Course,
    group_enrolments,
    plan_completions,
)
from creditbridge.quickstart.config import run_settings, write_config
from creditbridge.quickstart.province import write_province
from creditbridge.quickstart.services import Secrets, Services, start_services
from creditbridge.reports.build import write_report
from creditbridge.runner.worker import Worker
from creditbridge.sandbox.app import state_of
from creditbridge.settings import Settings
from creditbridge.store import Store, open_store
from creditbridge.store.models import Base
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.credits import CreditMark
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.store.models.registry import RegistrySubmission
from creditbridge.store.models.sync import Enrolment
from creditbridge.sync.outcome import SyncOutcome
from creditbridge.webhooks.counters import read_all, split_outcomes
from creditbridge.webhooks.processing import process_pending

DEFAULT_DIR = Path("creditbridge-data") / "quickstart"
# Sized to finish in well under a minute on a 2-core laptop; --teachers takes more (about 0.3 s each).
DEFAULT_TEACHERS = 100
MARKER = ".creditbridge-quickstart"
# What a run writes, and so what the next run may remove (nothing else in the directory is touched).
OWNED = ("province", "reports", "exports", "creditbridge.toml", "quickstart.json", "state.db", "sandbox.db",
         "registry-sim.db")
DRAIN_TIMEOUT_SECONDS = 120.0
REGISTERED_TIMEOUT_SECONDS = 120.0


class QuickstartError(CreditbridgeError):
    """The quickstart could not run (a directory it must not touch, a step that failed)."""


@dataclass
class StepResult:
    key: str
    title: str
    seconds: float
    counts: dict[str, Any]
    detail: str


class Progress(Protocol):
    """What the command shows while the run goes: a step begins, advances, ends."""

    def begin(self, key: str, title: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def update(self, note: str, done: int, total: int | None) -> None: ...
    def end(self, step: StepResult) -> None: ...


class QuietProgress:
    def begin(self, key: str, title: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, note: str, done: int, total: int | None) -> None:
        pass

    def end(self, step: StepResult) -> None:
        pass


@dataclass
class Run:
    directory: Path
    teachers: int
    seed: int
    programme: str
    progress: Progress
    steps: list[StepResult] = field(default_factory=list)

    @contextmanager
    def step(self, key: str, title: str, total: int | None = None) -> Iterator[dict[str, Any]]:
        """Times one step; the block fills `counts` (and `counts['_detail']`, the line shown)."""
        self.progress.begin(key, title, total)
        counts: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield counts
        except CreditbridgeError as e:
            raise QuickstartError(f"{title}: {e}") from e
        detail = str(counts.pop("_detail", ""))
        result = StepResult(key, title, round(time.perf_counter() - started, 3), counts, detail)
        self.steps.append(result)
        self.progress.end(result)


def prepare_directory(directory: Path) -> None:
    """Each run starts from scratch, in a directory only the quickstart writes to: a second run replaces
    the first one's files (and only those), so the figures always describe one clean pass."""
    try:
        if directory.exists():
            if not directory.is_dir():
                raise QuickstartError(f"{directory} exists and is not a directory")
            entries = [p for p in directory.iterdir()]
            if entries and not (directory / MARKER).exists():
                raise QuickstartError(f"{directory} is not empty and was not made by the quickstart; "
                                      "choose another --dir or empty it")
            for p in entries:
                base = p.name.split("-wal")[0].split("-shm")[0].split("-journal")[0]
                if base in OWNED:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER).write_text("made by `creditbridge quickstart`; the next run replaces its files\n",
                                        encoding="utf-8")
    except OSError as e:  # a name too long, a place no directory can be made (/proc), no permission
        raise QuickstartError(f"--dir {directory}: cannot be used: {e.strerror or type(e).__name__}") from e


def run_quickstart(directory: Path = DEFAULT_DIR, *, teachers: int = DEFAULT_TEACHERS, seed: int = 0,
                   programme: str = "sd-2022", progress: Progress | None = None) -> dict[str, Any]:
    """Run every step; return the summary (what `--json` prints). Servers are stopped whatever happens."""
    if teachers < 1:
        raise QuickstartError("--teachers must be at least 1")
    started = time.perf_counter()
    run = Run(directory=directory, teachers=teachers, seed=seed, programme=programme,
              progress=progress or QuietProgress())
    prepare_directory(directory)
    keys = Secrets.generate()
    base = run_settings(directory, keys, programme=programme)

    with ExitStack() as stack:
        province = _generate(run)
        store = open_store(base.database.url)
        stack.callback(store.dispose)
        with run.step("services", "Start sandbox LMS, webhook receiver and registry-sim") as c:
            services = start_services(stack, base, keys, directory)
            # As docs/moodle.md sets a real site up: course welcome messages off before any course exists,
            # so the province's enrolments send no mail (the sandbox counts what would have been sent).
            SandboxAdmin(services, keys.sandbox_token).post("/sandbox/admin/welcome", {"sendoption": 0, "scope": "all"})
            c.update({"sandbox": services.sandbox_url, "receiver": services.receiver_url,
                      "registry": services.registry_url})
            c["_detail"] = "on 127.0.0.1, free ports"
        settings = run_settings(directory, keys, programme=programme, sandbox_url=services.sandbox_url,
                                registry_url=services.registry_url)
        evaluated: EvaluateResult | None = None
        pushed: PushResult | None = None
        # The pipeline's steps in its order (pipeline.py); the school term happens between the sync and reconcile.
        for step in PIPELINE:
            if step in SYNC_STEPS:
                _sync(run, settings, store, step, province)
            elif step is RECONCILE:
                _school_term(run, settings, store, services, keys)
                _reconcile(run, settings, store)
            elif step is EVALUATE:
                evaluated = _evaluate(run, settings, store)
            elif step is PUSH:
                pushed = _push(run, settings, store, services)
            else:  # a step added to the pipeline must be given its place here
                raise QuickstartError(f"the quickstart does not run the pipeline's {step.key!r} step")
        report = _report(run, settings, store)
        welcome_messages = len(SandboxAdmin(services, keys.sandbox_token).state.welcome_messages())
        services.save_sandbox(directory / "sandbox.db")
        config = write_config(directory, keys, programme=programme)

    assert pushed is not None  # the pipeline ends with its push step, which the loop above always runs
    summary = _summary(run, store_url=base.database.url, evaluated=evaluated, pushed=pushed, report=report,
                       config=config, seconds=time.perf_counter() - started)
    summary["welcome_messages"] = welcome_messages
    (directory / "quickstart.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str),
                                               encoding="utf-8")
    return summary


# -- steps -------------------------------------------------------------------------------------------------


def _generate(run: Run) -> Any:
    with run.step("province", f"Generate a province of {run.teachers} teachers") as c:
        files = write_province(run.directory / "province", teachers=run.teachers, seed=run.seed,
                               programme=run.programme)
        c.update(_province_counts(files))
        c["_detail"] = (f"{c['teachers']} teachers ({c['leavers']} leavers) in {c['schools']} schools of "
                        f"{c['counties']} counties and {c['cities']} cities; {c['courses']} courses")
    return files


def _province_counts(files: Any) -> dict[str, int]:
    return {"teachers": files.teachers, "schools": files.schools, "counties": files.counties, "cities": files.cities,
            "leavers": files.leavers, "courses": files.courses}


def _sync(run: Run, settings: Settings, store: Store, step: Step[SyncOutcome], province: Any) -> None:
    def progress(stage: str, done: int, total: int) -> None:
        run.progress.update(stage, done, total or None)

    files = {"catalog": province.catalog, "topics": province.topics, "roster": province.roster}
    with run.step(step.key, step.title) as c:
        outcome = step.run(settings, store, StepInput(file=Path(files[step.key]), progress=progress))
        out = outcome.as_json()
        c.update(_sync_counts(out))
        c["_detail"] = _sync_detail(step.key, out)
    # A generated province is valid by construction: a refused row is a bug worth stopping for.
    if outcome.aborted or outcome.errors:
        first = outcome.errors[0].as_json() if outcome.errors else {}
        raise QuickstartError(f"{step.title}: {outcome.aborted or 'rows refused'} ({len(outcome.errors)} error(s), "
                              f"first: {first}); report: {outcome.report}")


def _school_term(run: Run, settings: Settings, store: Store, services: Services, keys: Secrets) -> None:
    """Teachers study and complete courses; their webhooks come in. Continuous mode, as `creditbridge run` keeps
    it: a worker evaluates and pushes while they do."""
    worker = Worker(settings, store)
    worker_thread = threading.Thread(target=worker.run, name="quickstart-worker", daemon=True)
    worker_thread.start()
    try:
        last = _complete(run, settings, store, services, keys)
        _drain(run, settings, store, services)
        _registered(run, store, last)
    finally:
        worker.stop()
        worker_thread.join(60)


def _sync_counts(out: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {k: v for k, v in out.items() if isinstance(v, int) and not isinstance(v, bool)}
    counts["errors"] = len(out.get("errors") or [])
    if out.get("report"):
        counts["report"] = str(out["report"])
    return counts


def _sync_detail(key: str, out: dict[str, Any]) -> str:
    if key == "catalog":
        return f"{out['created']} courses created, {out['lms_calls']} LMS write calls"
    if key == "topics":
        return f"{out['created']} school topic choices, {out['lms_calls']} LMS write calls"
    return (f"{out['created']} teachers created, {out['lesson_cases_assigned']} lesson cases assigned, "
            f"{out['lms_calls']} LMS write calls")


def _enrolments(settings: Settings, store: Store) -> dict[int, list[Course]]:
    """Who sync enrolled in what (Moodle user id -> catalog courses)."""
    programme = settings.sync.programme
    q = (select(Teacher.moodle_user_id, CatalogCourse.moodle_course_id, CatalogCourse.code, CatalogCourse.kind,
                CatalogCourse.topic, CatalogCourse.hours)
         .select_from(Enrolment)
         .join(Teacher, (Teacher.programme == Enrolment.programme) & (Teacher.id_number == Enrolment.teacher))
         .join(CatalogCourse,
               (CatalogCourse.programme == Enrolment.programme) & (CatalogCourse.code == Enrolment.course))
         .where(Enrolment.programme == programme, Teacher.status == "active", Teacher.moodle_user_id.is_not(None),
                CatalogCourse.moodle_course_id.is_not(None)))
    with store.session() as s:
        pairs = [(int(uid), Course(int(cid), code, kind, topic or "", float(hours)))
                 for uid, cid, code, kind, topic, hours in s.execute(q)
                 if uid is not None and cid is not None]  # as the query asks; says so to the type checker
    return group_enrolments(pairs)


# sd-2022's seeds: teachers choose their courses from 11 July; the replayed year's completions start WINDOW_START.
ELECTIVES_CHOSEN = WINDOW_START.replace(month=7, day=11)


def _choose_electives(settings: Settings, store: Store, admin: SandboxAdmin,
                      enrolments: dict[int, list[Course]]) -> int:
    """From 11 July the teachers choose their electives (docs/sync.md "Enrolment policy"): here each clicks
    "Enrol me" in every elective open to them, the way `creditbridge sandbox enrol-me --all-open` does, and
    the plan below decides which of them they finish. Returns how many self enrolments were made."""
    with store.session() as s:
        catalog = {cid: Course(cid, c.code, c.kind, c.topic or "", float(c.hours))
                   for c in s.scalars(select(CatalogCourse).where(CatalogCourse.programme == settings.sync.programme))
                   if (cid := c.moodle_course_id) is not None}
    made = 0
    real_clock = admin.state.clock
    # enrol_self starts the enrolment now: in the replayed school year, before the first completion.
    admin.state.clock = lambda: int(ELECTIVES_CHOSEN.timestamp())
    try:
        for userid in sorted(enrolments):
            chosen = admin.post("/sandbox/admin/self_enrol", {"userid": userid, "courseid": 0})["courseids"]
            enrolments[userid] = [*enrolments[userid], *(catalog[c] for c in chosen if c in catalog)]
            made += len(chosen)
    finally:
        admin.state.clock = real_clock
    return made


def _complete(run: Run, settings: Settings, store: Store, services: Services,
              keys: Secrets) -> tuple[Completion, float] | None:
    """Record the plan's completions; the last one whose webhook is sent, and when it was recorded."""
    enrolments = _enrolments(settings, store)
    self_enrolled = 0
    if settings.sync.electives == "self":
        self_enrolled = _choose_electives(settings, store, SandboxAdmin(services, keys.sandbox_token), enrolments)
    plan = plan_completions(enrolments, seed=run.seed)
    total = len(plan.completions)
    with run.step("completions", "Teachers complete courses in the LMS", total=total) as c:
        courses = sorted({course.moodle_id for cs in enrolments.values() for course in cs})
        admin = SandboxAdmin(services, keys.sandbox_token)
        for courseid in courses:
            # A course completes when the learner marks it complete (Moodle's "self completion" criterion);
            # without any criterion Moodle will not report completion status to reconciliation.
            admin.post("/sandbox/admin/completion_criteria", {"courseid": courseid, "self": 1})
        record_completions(admin, plan.completions, on_done=run.progress.advance)
        sent = [comp for comp in plan.completions if not comp.webhook_lost]
        last = (sent[-1], time.monotonic()) if sent else None
        c.update(plan.as_json())
        c["enrolments"] = sum(len(v) for v in enrolments.values())
        c["self_enrolments"] = self_enrolled
        p = plan.profiles
        c["_detail"] = (f"{total} course completions: {p['finished']} teachers finished, "
                        f"{p['missed_lesson_case'] + p['few_electives']} stopped short, {p['not_started']} never "
                        f"started; {c['webhooks_lost']} webhook(s) will be lost on the way")
    return last


class SandboxAdmin:
    """The sandbox's admin endpoints (what `creditbridge sandbox complete` calls), driven in process."""

    def __init__(self, services: Services, token: str) -> None:
        self.state = state_of(services.sandbox_app)
        self.client = services.sandbox_app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, fields: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, data=fields, headers=self.headers)
        if r.status_code >= 300:
            raise QuickstartError(f"sandbox refused {path} {fields}: HTTP {r.status_code} "
                                  f"{r.get_data(as_text=True)[:200]}")
        return r.get_json()

    def ws(self, token: str, function: str, params: dict[str, Any]) -> Any:
        """A web-service call as the token's user (the REST endpoint every Moodle client uses)."""
        r = self.client.post("/webservice/rest/server.php",
                             data={"wstoken": token, "wsfunction": function, "moodlewsrestformat": "json", **params})
        answer = r.get_json()
        if isinstance(answer, dict) and answer.get("exception"):
            raise QuickstartError(f"sandbox {function} {params}: {answer.get('errorcode')}: {answer.get('message')}")
        return answer


def record_completions(admin: SandboxAdmin, completions: list[Completion],
                       on_done: Callable[[int], None] | None = None) -> None:
    """The sandbox's clock is set to each completion's time while it is recorded: Moodle stamps the
    course_completed event (and so the webhook and the learning record) with the time the event is
    raised, and sd-2022 counts only what happened inside its 2022 study window. The quickstart replays
    that school year. A completion whose webhook is to be lost is recorded with the sandbox's webhook
    sender unplugged, as if the plugin's task had never run."""
    state = admin.state
    real_clock = state.clock
    listeners = list(state.listeners)
    tokens: dict[int, str] = {}
    try:
        for comp in completions:
            if comp.userid not in tokens:
                minted = admin.post("/sandbox/admin/token", {"userid": comp.userid, "kind": "user"})
                tokens[comp.userid] = minted["token"]
            state.clock = functools.partial(int, comp.timecompleted)  # the sandbox's clock stops at this time
            # The teacher marks the course complete (self completion)...
            admin.ws(tokens[comp.userid], "core_completion_mark_course_self_completed", {"courseid": comp.courseid})
            # ...and Moodle's completion cron completes the course, raising course_completed.
            state.listeners[:] = [] if comp.webhook_lost else listeners
            admin.post("/sandbox/admin/course_completion", {"userid": comp.userid, "courseid": comp.courseid,
                                                            "timecompleted": comp.timecompleted})
            state.listeners[:] = listeners
            if on_done is not None:
                on_done(1)
    finally:
        state.clock = real_clock
        state.listeners[:] = listeners


def _drain(run: Run, settings: Settings, store: Store, services: Services) -> None:
    done = next(s.counts for s in run.steps if s.key == "completions")
    expected = done["completions"] - done["webhooks_lost"]
    with run.step("webhooks", "Completions arrive as signed webhooks; the inbox is processed", total=expected) as c:
        sender = services.webhook_sender()
        started = time.perf_counter()
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        # The inbox is the truth: count what the receiver has durably stored until every sent webhook is in,
        # or the sender has nothing left to try (then the shortfall is reported), or time is up.
        while True:
            with store.session() as s:
                received = s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0
            run.progress.update("received", received, expected)
            idle = sender is not None and sender.queue.unfinished_tasks == 0
            if received >= expected or time.monotonic() > deadline or (idle and received == _inbox_size(store)):
                break
            time.sleep(0.2)
        run.progress.update("processing", received, expected)
        receiving = time.perf_counter() - started
        processed = process_pending(settings, store)
        processing = time.perf_counter() - started - receiving
        with store.session() as s:
            records = s.scalar(select(func.count()).select_from(LearningRecordRow)) or 0
            parked = s.scalar(select(func.count()).select_from(ParkedEvent)) or 0
            pending = s.scalar(select(func.count()).select_from(WebhookDelivery)
                               .where(WebhookDelivery.state == "pending")) or 0
        counters = read_all(store)
        c.update({"received": received, "duplicates": counters.get("duplicate", 0),
                  "rejected": sum(split_outcomes(counters)[0].values()),
                  "records": records, "parked": parked, "pending": pending,
                  "sender_failed": getattr(sender, "failed", 0), "processed": processed.processed,
                  "receive_seconds": round(receiving, 3), "process_seconds": round(processing, 3)})
        c["_detail"] = (f"{received} deliveries verified and stored, {processed.processed} processed into "
                        f"{records} learning records, {parked} parked")
        if received < expected:
            raise QuickstartError(f"only {received} of {expected} webhooks arrived "
                                  f"within {DRAIN_TIMEOUT_SECONDS:.0f} s")


def _registered(run: Run, store: Store, last: tuple[Completion, float] | None) -> None:
    """Continuous mode: the time from the last completion (its webhook sent) until its teacher's credit is
    current at the registry: the learning record stored, the teacher evaluated (no mark left) and no result of
    theirs waiting for push."""
    with run.step("registered", "The last completion's credit reaches the registry (continuous mode)") as c:
        if last is None:
            c["_detail"] = "no completion was sent"
            return
        comp, at = last
        deadline = at + REGISTERED_TIMEOUT_SECONDS
        while True:
            with store.session() as s:
                teacher = s.scalar(select(Teacher.id_number).where(Teacher.moodle_user_id == comp.userid))
                course = s.scalar(select(CatalogCourse.code).where(CatalogCourse.moodle_course_id == comp.courseid))
                stored = s.scalar(select(func.count()).select_from(LearningRecordRow).where(
                    LearningRecordRow.teacher == teacher, LearningRecordRow.course == course)) or 0
                marked = s.scalar(select(func.count()).select_from(CreditMark).where(CreditMark.teacher == teacher))
                waiting = s.scalar(select(func.count()).select_from(RegistrySubmission).where(
                    RegistrySubmission.teacher == teacher, RegistrySubmission.state.in_(("pending", "sent"))))
                acknowledged = s.scalar(select(func.count()).select_from(RegistrySubmission).where(
                    RegistrySubmission.teacher == teacher, RegistrySubmission.state == "acknowledged"))
            if stored and not marked and not waiting and acknowledged:
                break
            if time.monotonic() > deadline:
                raise QuickstartError(f"the last completion's credit was not registered within "
                                      f"{REGISTERED_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.02)
        c["seconds_from_last_completion"] = round(time.monotonic() - at, 3)
        c["_detail"] = f"{c['seconds_from_last_completion']:.2f} s from the last completion to its registered credit"


def _inbox_size(store: Store) -> int:
    time.sleep(0.2)  # a delivery the sender just got its answer for is committed by then
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


def _reconcile(run: Run, settings: Settings, store: Store) -> None:
    with run.step(RECONCILE.key, RECONCILE.title) as c:
        out = RECONCILE.run(settings, store, StepInput())
        c.update(out.as_json())
        c["_detail"] = (f"{out.already_known} completions already known from webhooks, "
                        f"{out.created} missed ones recovered, {out.checked} enrolments checked")


def _evaluate(run: Run, settings: Settings, store: Store) -> EvaluateResult:
    title = f"{EVALUATE.title} by the {settings.sync.programme} rules"
    with run.step(EVALUATE.key, title, total=run.teachers) as c:
        out = EVALUATE.run(settings, store, StepInput(programme=settings.sync.programme, advance=run.progress.advance))
        c.update({k: v for k, v in out.as_json().items() if isinstance(v, int | float)})
        c["_detail"] = f"{out.evaluated} results: {out.passed} passed, {out.failed} not yet"
    return out


def _push(run: Run, settings: Settings, store: Store, services: Services) -> PushResult:
    with run.step(PUSH.key, PUSH.title) as c:
        out = PUSH.run(settings, store, StepInput(advance=run.progress.advance))
        c.update({k: v for k, v in out.as_json().items() if isinstance(v, int) and not isinstance(v, bool)})
        c["registry_holds"] = services.registry_counts()
        c["_detail"] = (f"{out.acknowledged} acknowledged, {out.rejected} rejected, {out.pending} pending; "
                        f"the registry holds {c['registry_holds'].get('active', 0)} active records")
    return out


def _report(run: Run, settings: Settings, store: Store) -> Any:
    with run.step("report", "Write the report (XLSX and one offline HTML page)") as c:
        paths = write_report(settings, store, run.directory / "reports", programme=settings.sync.programme)
        c.update({"html": str(paths.html), "xlsx": str(paths.xlsx)})
        c["_detail"] = "pass rates by school, county and city, credits, registry state, deadline warnings"
    return paths


def _summary(run: Run, *, store_url: str, evaluated: EvaluateResult | None, pushed: PushResult, report: Any,
             config: Path, seconds: float) -> dict[str, Any]:
    store = open_store(store_url, migrate=False)
    try:
        credits = _credit_figures(store, run.programme)
    finally:
        store.dispose()
    steps = {s.key: {"seconds": s.seconds, **s.counts} for s in run.steps}
    province = steps["province"]
    return {
        "teachers": province["teachers"],
        "leavers": province["leavers"],
        "schools": province["schools"],
        "courses": province["courses"],
        "passed": credits["passed"],
        "not_passed": credits["not_passed"],
        # Continuous mode registers most results before the push step: count what the store holds acknowledged.
        "credits_registered": credits["acknowledged"],
        "last_completion_to_registered_seconds": steps.get("registered", {}).get("seconds_from_last_completion"),
        "learning_records": credits["records"],
        "credits_total": credits["credits_total"],
        "registry_active_records": steps["push"]["registry_holds"].get("active", 0),
        "rejected": pushed.rejected,
        "pending": pushed.pending,
        "report": str(Path(report.html).resolve()),
        "report_xlsx": str(Path(report.xlsx).resolve()),
        "config": str(config.resolve()),
        "dir": str(run.directory.resolve()),
        "sample_teacher": credits["sample_teacher"],
        "not_passed_reasons": credits["reasons"],
        "seconds": round(seconds, 2),
        "steps": steps,
    }


def _credit_figures(store: Store, programme: str) -> dict[str, Any]:
    """Read back from the credit results themselves, not from the step counters."""
    with store.session() as s:
        t = Base.metadata.tables["credit_result"]
        where = (t.c.programme == programme, t.c.role == "teacher")
        passed = s.scalar(select(func.count()).select_from(t).where(*where, t.c.passed.is_(True))) or 0
        total = s.scalar(select(func.count()).select_from(t).where(*where)) or 0
        credits = s.scalar(select(func.coalesce(func.sum(t.c.credits), 0)).where(*where))
        # Someone who did not pass makes the more instructive `credits explain` example.
        sample_id = s.scalar(select(t.c.teacher).where(*where, t.c.passed.is_(False)).order_by(t.c.teacher).limit(1)) \
            or s.scalar(select(t.c.teacher).where(*where).order_by(t.c.teacher).limit(1))
        # The suggested `credits explain` names the teacher by Moodle username: no ID number on the screen.
        sample = s.scalar(select(Teacher.username).where(Teacher.programme == programme,
                                                         Teacher.id_number == sample_id)) or sample_id
        reasons: Counter[str] = Counter()
        for (found,) in s.execute(select(t.c.reasons).where(*where, t.c.passed.is_(False))):
            # "elective hours 7 < 14" and "elective hours 9 < 14" are one reason: drop the figures and codes.
            reasons.update({_reason_kind(r) for r in (found or [])})
        records = s.scalar(select(func.count()).select_from(LearningRecordRow)
                           .where(LearningRecordRow.programme == programme)) or 0
        acknowledged = s.scalar(select(func.count()).select_from(RegistrySubmission).where(
            RegistrySubmission.programme == programme, RegistrySubmission.state == "acknowledged")) or 0
    return {"passed": passed, "not_passed": total - passed, "credits_total": float(credits or 0), "records": records,
            "acknowledged": acknowledged,
            "sample_teacher": sample, "reasons": dict(reasons.most_common(4))}


def _reason_kind(reason: str) -> str:
    """"elective hours 7 < 14" -> "elective hours < 14": the same shortfall for every teacher who has it."""
    words = reason.split()
    kept = [w for i, w in enumerate(words)
            if w not in ("-", "–") and (not any(ch.isdigit() for ch in w) or (i and words[i - 1] in ("<", ">")))]
    return " ".join(kept).rstrip(":,")
