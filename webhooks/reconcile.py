"""Reconciliation: ask Moodle which enrolled teachers completed which catalog courses, and store the
learning records a missed webhook would have made. A course reset or recompletion raises no Moodle event,
and a webhook can be lost; this poll catches both. The source is derived exactly as the webhook path
derives it (processing.course_source), so a completion seen both ways is one row."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.records import LearningRecord
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.webhooks.processing import course_source, store_record

log = logging.getLogger(__name__)

PAGE_SIZE = 200
# Moodle answers these for a course whose completion cannot be read; the course is skipped, not failed.
SKIPPABLE = {"usernotenroled", "cannotviewreport", "nocriteriaset", "completionnotenabled"}


def reconcile(settings: Settings, store: Store, client: MoodleClient) -> dict[str, Any]:
    programme = settings.sync.programme
    site = str(client.get_site_info().get("siteurl") or settings.moodle.url).rstrip("/")
    with store.session() as s:
        courses = {int(c.moodle_course_id): (c.code, float(c.hours)) for c in s.scalars(
            select(CatalogCourse).where(CatalogCourse.programme == programme,
                                        CatalogCourse.moodle_course_id.is_not(None)).order_by(CatalogCourse.code))}
        teachers = {t.moodle_user_id: t.id_number for t in s.scalars(
            select(Teacher).where(Teacher.programme == programme, Teacher.moodle_user_id.is_not(None)))}
        known = set(s.scalars(select(LearningRecordRow.source).where(LearningRecordRow.programme == programme,
                                                                     LearningRecordRow.kind == "course")))
    out: dict[str, Any] = {"courses": len(courses), "checked": 0, "already_known": 0, "created": 0,
                           "skipped": 0, "calls": 1}
    # Who Moodle says is enrolled where (ids only), less what a webhook or an earlier poll already recorded.
    unknown: dict[int, list[int]] = {}
    for courseid in courses:
        enrolled = client.get_enrolled_users(courseid, page_size=PAGE_SIZE, userfields=["id"])
        out["calls"] += 1 + len(enrolled) // PAGE_SIZE
        for user in enrolled:
            uid = int(user["id"])
            if uid not in teachers:
                continue
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
    log.info("reconcile: %s", out)
    return out


def _reconcile_pair(client: MoodleClient, store: Store, out: dict[str, Any], known: set[str], *, site: str,
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
