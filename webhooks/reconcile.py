"""Reconciliation: ask Moodle which enrolled teachers completed which catalog courses and activities, and store
the learning records a missed webhook would have made. A course reset or recompletion raises no Moodle event,
and a webhook can be lost (the plugin drops an event the receiver refused with a 4xx); this poll catches both.

Course completions: the source is derived exactly as the webhook path derives it (processing.course_source),
so a completion seen both ways is one row.

Activity completions: a webhook's source carries the event's time, which can differ by a second from Moodle's
`timecompleted`, so matching sources would count one completion twice. They are compared by state instead:
(teacher, course, activity) is complete in Moodle or not, and the store holds a live (not withdrawn)
completion of it or not. Complete in Moodle and not stored: the completion is stored. Stored and no longer
complete in Moodle: a revocation was missed, and one is stored, which withdraws the completion. Calls: one
`core_course_get_contents` per managed course with enrolled teachers; for a course with completion-tracked
activities, one `core_completion_get_activities_completion_status` per enrolled teacher, and one
`core_course_get_course_module` per activity whose idnumber is needed (cached for the run)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy import func, select

from creditbridge.connector.errors import AccessDeniedError, MoodleError, ProtocolError, UnknownFunctionError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.records import LearningRecord
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.webhooks.processing import activity_name, apply_revocations, course_source, store_record

log = logging.getLogger(__name__)

PAGE_SIZE = 200
# Moodle answers these for a course whose completion cannot be read; the course is skipped, not failed.
SKIPPABLE = {"usernotenroled", "cannotviewreport", "nocriteriaset", "completionnotenabled"}


def _without_userinfo(url: str) -> str:
    """The site's address as Moodle's wwwroot writes it: a `user:password@` in the configured URL (HTTP basic
    auth in front of the site) is no part of the site's name and must not be stored in every record's source."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True, slots=True)
class ActivityReconcile:
    """The activity half of a run: `courses` with completion-tracked activities read, completions `checked`,
    `already_known` (stored and complete in Moodle), `created` (complete, not stored), `withdrawn` (stored, no
    longer complete) and `skipped` (courses or teachers whose completion Moodle would not give).
    `unavailable`: why the site could not answer activity completion at all (the run stopped there)."""

    courses: int = 0
    checked: int = 0
    already_known: int = 0
    created: int = 0
    withdrawn: int = 0
    skipped: int = 0
    unavailable: str | None = None

    def as_json(self) -> dict[str, int | str]:
        doc: dict[str, int | str] = asdict(self)
        if self.unavailable is None:  # the key only appears when the site could not answer
            del doc["unavailable"]
        return doc


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What one reconciliation did: managed `courses` with a Moodle id, course completions `checked` with Moodle,
    `already_known` from a webhook or an earlier poll, `created` (missed ones stored), `skipped`, the web-service
    `calls` made (activity calls included), and the activity half."""

    courses: int
    checked: int
    already_known: int
    created: int
    skipped: int
    calls: int
    activities: ActivityReconcile

    def as_json(self) -> dict[str, Any]:
        # The fields, in order: the keys `intake reconcile --json` prints and the scheduler's ledger stores (a
        # fresh dict: the reconcile job adds its "inbox" to it).
        doc = asdict(self)
        doc["activities"] = self.activities.as_json()
        return doc


def reconcile(settings: Settings, store: Store, client: MoodleClient) -> ReconcileResult:
    programme = settings.sync.programme
    site = str(client.get_site_info().get("siteurl") or _without_userinfo(settings.moodle.url)).rstrip("/")
    with store.session() as s:
        courses = {int(c.moodle_course_id): (c.code, float(c.hours)) for c in s.scalars(
            select(CatalogCourse).where(CatalogCourse.programme == programme,
                                        CatalogCourse.moodle_course_id.is_not(None)).order_by(CatalogCourse.code))
            if c.moodle_course_id is not None}  # as the query asks; says so to the type checker
        teachers = {t.moodle_user_id: t.id_number for t in s.scalars(
            select(Teacher).where(Teacher.programme == programme, Teacher.moodle_user_id.is_not(None)))}
        known = set(s.scalars(select(LearningRecordRow.source).where(LearningRecordRow.programme == programme,
                                                                     LearningRecordRow.kind == "course")))
    # A running tally, keyed by ReconcileResult's counts; the helpers below add to it.
    out: dict[str, int] = {"courses": len(courses), "checked": 0, "already_known": 0, "created": 0,
                           "skipped": 0, "calls": 1}
    # Who Moodle says is enrolled where (ids only), less what a webhook or an earlier poll already recorded.
    unknown: dict[int, list[int]] = {}
    learners: dict[int, list[int]] = {}
    for courseid in courses:
        enrolled = client.get_enrolled_users(courseid, page_size=PAGE_SIZE, userfields=["id"])
        out["calls"] += 1 + len(enrolled) // PAGE_SIZE
        for user in enrolled:
            uid = int(user["id"])
            if uid not in teachers:
                continue
            learners.setdefault(courseid, []).append(uid)
            if course_source(site, uid, courseid) in known:  # no Moodle call needed
                out["already_known"] += 1
            else:
                unknown.setdefault(uid, []).append(courseid)
    flags_usable = True
    for uid, courseids in unknown.items():
        out["checked"] += len(courseids)
        # A teacher's course list says which of their courses are complete in one call, where asking course
        # by course costs a call per enrolment (most of them not complete). A pair is asked directly when it is
        # alone, when the list does not settle it, and for the time of a completion the list reports.
        flags: dict[int, bool] = {}
        if flags_usable and len(courseids) > 1:
            out["calls"] += 1
            try:
                flags = {int(c["id"]): bool(c["completed"]) for c in client.get_users_courses(uid)
                         if c.get("completed") is not None}
            except MoodleError as e:
                # e.g. core_enrol_get_users_courses not in the service: ask pair by pair from now on
                log.warning("reconcile: course lists unavailable (%s); asking course by course", e.errorcode)
                flags_usable = False
        for courseid in courseids:
            if flags.get(courseid) is False:
                continue
            out["calls"] += 1
            _reconcile_pair(client, store, out, known, site=site, programme=programme, teacher=teachers[uid],
                            uid=uid, courseid=courseid, code=courses[courseid][0], hours=courses[courseid][1])
    activities = _reconcile_activities(client, store, out, site=site, programme=programme,
                                       courses=courses, teachers=teachers, learners=learners)
    result = ReconcileResult(**out, activities=activities)
    log.info("reconcile: %s", result.as_json())
    return result


class _Unavailable(Exception):
    """The site cannot answer activity completion (function not in the service, no capability)."""


def _reconcile_activities(client: MoodleClient, store: Store, out: dict[str, int], *, site: str, programme: str,
                          courses: dict[int, tuple[str, float]], teachers: dict[int | None, str],
                          learners: dict[int, list[int]]) -> ActivityReconcile:
    """Activity completions of enrolled teachers in managed courses, compared by state (see the module's doc)."""
    acts: dict[str, int] = {"courses": 0, "checked": 0, "already_known": 0, "created": 0, "withdrawn": 0,
                            "skipped": 0}
    with store.session() as s:
        live = {(t, c, a) for t, c, a in s.execute(
            select(LearningRecordRow.teacher, LearningRecordRow.course, LearningRecordRow.activity)
            .where(LearningRecordRow.programme == programme, LearningRecordRow.kind == "activity",
                   LearningRecordRow.withdrawn_by.is_(None)))}
    live_pairs = {(t, c) for t, c, _ in live}

    def ask(fn: Any, *args: Any) -> Any:
        out["calls"] += 1
        try:
            return fn(*args)
        except (AccessDeniedError, UnknownFunctionError) as e:
            raise _Unavailable(f"{e.function}: {e.message} [{e.errorcode}]") from e

    names: dict[int, str] = {}  # cmid (unique on the site) -> activity name, asked once per run
    unavailable: str | None = None

    def name_of(cmid: int) -> str:
        if cmid not in names:
            names[cmid] = activity_name(ask(client.get_course_module, cmid).get("idnumber"), cmid)
        return names[cmid]

    try:
        for courseid, uids in learners.items():
            code = courses[courseid][0]
            try:
                contents = ask(client.get_course_contents, courseid)
            except ProtocolError:
                raise  # an answer of the wrong shape is no course we may not read: stop and say so
            except MoodleError as e:
                log.warning("reconcile: activities of %s not readable (%s); skipped", code, e.errorcode)
                acts["skipped"] += 1
                continue
            tracked = _tracked(contents)
            if not tracked:
                continue
            acts["courses"] += 1
            for uid in uids:
                teacher = teachers[uid]
                try:
                    statuses = _statuses(ask(client.get_activities_completion_status, courseid, uid))
                except MoodleError as e:
                    if e.errorcode in SKIPPABLE:
                        acts["skipped"] += 1
                        continue
                    raise
                for cmid, state, timecompleted in statuses:
                    if cmid not in tracked:
                        continue
                    if not state and (teacher, code) not in live_pairs:
                        continue  # incomplete and nothing stored: the usual case costs no idnumber lookup
                    acts["checked"] += 1
                    key = (teacher, code, name_of(cmid))
                    if state and key in live:
                        acts["already_known"] += 1
                    elif state:
                        if _store_activity(store, site=site, programme=programme, key=key, uid=uid, cmid=cmid,
                                           state=state, timecompleted=timecompleted):
                            acts["created"] += 1
                            live.add(key)
                            live_pairs.add((teacher, code))
                    elif key in live:
                        acts["withdrawn"] += _store_revocation(store, site=site, programme=programme, key=key,
                                                               uid=uid, cmid=cmid)
                        live.discard(key)
    except _Unavailable as e:
        log.warning("reconcile: activity completions unavailable (%s)", e)
        unavailable = str(e)
    return ActivityReconcile(**acts, unavailable=unavailable)


def _tracked(contents: Any) -> set[int]:
    """The cmids of a course's completion-tracked activities, from core_course_get_contents."""
    try:
        return {int(m["id"]) for section in contents or [] for m in section.get("modules") or []
                if m.get("completion")}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProtocolError(f"unexpected answer ({type(e).__name__}: {e}): a list of sections with modules "
                            "was expected", function="core_course_get_contents") from e


def _statuses(answer: Any) -> list[tuple[int, int, int]]:
    """(cmid, state, timecompleted) of core_completion_get_activities_completion_status's answer."""
    try:
        return [(int(st["cmid"]), int(st.get("state") or 0), int(st.get("timecompleted") or 0))
                for st in answer.get("statuses") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProtocolError(f"unexpected answer ({type(e).__name__}: {e}): statuses with cmid, state and "
                            "timecompleted were expected",
                            function="core_completion_get_activities_completion_status") from e


def _store_activity(store: Store, *, site: str, programme: str, key: tuple[str, str, str], uid: int, cmid: int,
                    state: int, timecompleted: int) -> bool:
    teacher, code, activity = key
    when = datetime.fromtimestamp(timecompleted, UTC) if timecompleted else datetime.now(UTC)
    rec = LearningRecord(teacher=teacher, programme=programme, course=code, activity=activity, kind="activity",
                         passed=state != 3, occurred_at=when,  # 3: complete, failed
                         source=f"moodle:{site}:activity_completed:{uid}:{cmid}:{timecompleted}")
    with store.session() as s:
        if not store_record(s, rec, "reconcile"):
            return False
        apply_revocations(s, [rec])  # a revocation stored at or after it (arrived first) still applies
        return True


def _store_revocation(store: Store, *, site: str, programme: str, key: tuple[str, str, str], uid: int,
                      cmid: int) -> int:
    """Moodle no longer has the activity complete: store the revocation a missed webhook would have made."""
    teacher, code, activity = key
    now = datetime.now(UTC)
    with store.session() as s:
        # Not before the completions it revokes: a webhook's event time can be ahead of this host's clock.
        latest = s.scalar(select(func.max(LearningRecordRow.occurred_at)).where(
            LearningRecordRow.programme == programme, LearningRecordRow.teacher == teacher,
            LearningRecordRow.course == code, LearningRecordRow.activity == activity,
            LearningRecordRow.kind == "activity", LearningRecordRow.withdrawn_by.is_(None)))
        if latest is not None:
            latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
        when = max(now, latest) if latest is not None else now
        rec = LearningRecord(teacher=teacher, programme=programme, course=code, activity=activity,
                             kind="revocation", occurred_at=when,
                             source=f"moodle:{site}:activity_revoked:{uid}:{cmid}:{now.timestamp():.6f}")
        if not store_record(s, rec, "reconcile"):
            return 0
        return apply_revocations(s, [rec])


def _reconcile_pair(client: MoodleClient, store: Store, out: dict[str, int], known: set[str], *, site: str,
                    programme: str, teacher: str, uid: int, courseid: int, code: str, hours: float) -> None:
    """Ask Moodle for one enrolment's completion; store the learning record a missed webhook would have made."""
    try:
        status = client.get_course_completion_status(courseid, uid)["completionstatus"]
    except MoodleError as e:
        if e.errorcode in SKIPPABLE:
            out["skipped"] += 1
            return
        raise
    if not status.get("completed"):
        return
    times = [c["timecompleted"] for c in status.get("completions", []) if c.get("timecompleted")]
    when = datetime.fromtimestamp(max(times), UTC) if times else datetime.now(UTC)
    source = course_source(site, uid, courseid)
    try:
        rec = LearningRecord(teacher=teacher, programme=programme, course=code, kind="course",
                             passed=True, hours=hours, occurred_at=when, source=source)
    except ValidationError as e:
        log.warning("reconcile: skipping Moodle user %s in %s: %s", uid, code, e.errors(include_input=False)[0]["msg"])
        out["skipped"] += 1
        return
    with store.session() as s:
        if store_record(s, rec, "reconcile"):
            out["created"] += 1
            known.add(source)
