"""Inbox -> learning records. Runs after the receiving commit (inline in the receiver, and again from
`intake replay` / the scheduler), so a failure here never loses a delivery: it stays pending or parked."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from creditbridge.records import LearningRecord
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.webhooks.payload import EventType, WebhookPayload

log = logging.getLogger(__name__)


class Unresolvable(Exception):
    """The event names a user or course this store does not know (yet). Parked, retried after a sync."""


def course_source(site: str, userid: int, courseid: int) -> str:
    """Source of a course completion. Reconciliation derives it the same way, so both paths make one row."""
    return f"moodle:{site.rstrip('/')}:course_completed:{userid}:{courseid}"


def find_teacher(s: Session, programme: str, userid: int, username: str) -> Teacher | None:
    t = s.scalars(select(Teacher).where(Teacher.programme == programme, Teacher.moodle_user_id == userid)).first()
    if t is None and username:
        t = s.scalars(select(Teacher).where(Teacher.programme == programme, Teacher.username == username)).first()
    return t


def find_course(s: Session, programme: str, courseid: int, idnumber: str) -> CatalogCourse | None:
    q = select(CatalogCourse).where(CatalogCourse.programme == programme)
    if idnumber:
        c = s.scalars(q.where(CatalogCourse.code == idnumber)).first()
        if c is not None:
            return c
    return s.scalars(q.where(CatalogCourse.moodle_course_id == courseid)).first()


def store_record(s: Session, rec: LearningRecord, origin: str) -> bool:
    """Insert unless a row with this source exists. True if inserted. Safe against a concurrent twin."""
    if s.scalar(select(LearningRecordRow.id).where(LearningRecordRow.source == rec.source)) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(row_from_record(rec, origin))
    except IntegrityError:
        return False
    return True


def row_from_record(rec: LearningRecord, origin: str) -> LearningRecordRow:
    def dec(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(str(v))
    return LearningRecordRow(
        programme=rec.programme, teacher=rec.teacher, course=rec.course, activity=rec.activity,
        kind=rec.kind.value, hours=dec(rec.hours), minutes=dec(rec.minutes), score=dec(rec.score),
        passed=rec.passed, occurred_at=rec.occurred_at, source=rec.source, origin=origin)


def records_for(s: Session, p: WebhookPayload, programme: str) -> list[LearningRecord]:
    teacher = find_teacher(s, programme, p.user.id, p.user.username)
    if teacher is None:
        raise Unresolvable(f"unknown Moodle user {p.user.id} ({p.user.username})")
    course = find_course(s, programme, p.course.id, p.course.idnumber)
    if course is None:
        raise Unresolvable(f"unknown course {p.course.id} (idnumber {p.course.idnumber!r})")
    try:
        return _records(p, teacher, course, programme)
    except ValidationError as e:
        # e.g. a stored ID number with a wrong check digit: parked until the roster is corrected
        raise Unresolvable(f"record invalid: {e.errors(include_input=False)[0]['msg']}") from e


def _records(p: WebhookPayload, teacher: Teacher, course: CatalogCourse, programme: str) -> list[LearningRecord]:
    site = p.site.rstrip("/")
    when = datetime.fromtimestamp(p.timecreated, UTC)
    minutes = None if p.timespent is None else round(p.timespent / 60, 2)
    base: dict[str, Any] = {"teacher": teacher.id_number, "programme": programme, "course": course.code,
                            "occurred_at": when}
    if p.event is EventType.course_completed:
        return [LearningRecord(**base, kind="course", passed=True, hours=float(course.hours), minutes=minutes,
                               source=course_source(site, p.user.id, p.course.id))]
    if p.activity is None:
        raise Unresolvable(f"{p.event.value} without an activity")
    activity = p.activity.idnumber or f"cm{p.activity.cmid}"
    tail = f"{p.user.id}:{p.activity.cmid}:{p.timecreated}"
    if p.event is EventType.grade_updated:
        return [LearningRecord(**base, activity=activity, kind="score", score=p.grade, minutes=minutes,
                               source=f"moodle:{site}:grade_updated:{tail}:{p.objectid}")]
    if p.completionstate == 0:
        return [LearningRecord(**base, activity=activity, kind="revocation",
                               source=f"moodle:{site}:activity_revoked:{tail}")]
    return [LearningRecord(**base, activity=activity, kind="activity", passed=p.completionstate != 3,
                           minutes=minutes, source=f"moodle:{site}:activity_completed:{tail}")]


def _withdraw(s: Session, rec: LearningRecord) -> int:
    """Withdraw the activity completions this revocation revokes (those before it, not yet withdrawn)."""
    rows = s.scalars(select(LearningRecordRow).where(
        LearningRecordRow.programme == rec.programme, LearningRecordRow.teacher == rec.teacher,
        LearningRecordRow.course == rec.course, LearningRecordRow.activity == rec.activity,
        LearningRecordRow.kind == "activity", LearningRecordRow.withdrawn_by.is_(None),
        LearningRecordRow.occurred_at <= rec.occurred_at)).all()
    for r in rows:
        r.withdrawn_by = rec.source
    return len(rows)


def process_pending(store: Store, settings: Settings, *, webhook_ids: Sequence[str] | None = None,
                    include_parked: bool = True) -> dict[str, int]:
    """Turn pending (and, by default, parked) deliveries into learning records, one transaction each."""
    programme = settings.sync.programme
    states = ["pending", "parked"] if include_parked else ["pending"]
    with store.session() as s:
        q = select(WebhookDelivery.id).where(WebhookDelivery.state.in_(states)).order_by(WebhookDelivery.id)
        if webhook_ids is not None:
            q = q.where(WebhookDelivery.webhook_id.in_(list(webhook_ids)))
        ids = list(s.scalars(q))
    out = {"processed": 0, "records": 0, "duplicates": 0, "parked": 0, "withdrawn": 0}
    for did in ids:
        with store.session() as s:
            d = s.scalars(select(WebhookDelivery).where(WebhookDelivery.id == did,
                                                        WebhookDelivery.state.in_(states))
                          .with_for_update(skip_locked=True)).first()
            if d is None:  # another worker took it
                continue
            payload = WebhookPayload.model_validate(d.payload)
            try:
                recs = records_for(s, payload, programme)
            except Unresolvable as e:
                _park(s, d, str(e))
                out["parked"] += 1
                continue
            for rec in recs:
                if store_record(s, rec, "webhook"):
                    out["records"] += 1
                    if rec.kind == "revocation":
                        out["withdrawn"] += _withdraw(s, rec)
                else:
                    out["duplicates"] += 1
            d.state = "processed"
            d.processed_at = utcnow()
            parked = s.scalars(select(ParkedEvent).where(ParkedEvent.webhook_id == d.webhook_id)).first()
            if parked is not None:
                s.delete(parked)
            out["processed"] += 1
    return out


def _park(s: Session, d: WebhookDelivery, reason: str) -> None:
    d.state = "parked"
    p = s.scalars(select(ParkedEvent).where(ParkedEvent.webhook_id == d.webhook_id)).first()
    if p is None:
        s.add(ParkedEvent(webhook_id=d.webhook_id, reason=reason))
    else:
        p.reason, p.attempts, p.last_tried_at = reason, p.attempts + 1, utcnow()


def list_parked(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.execute(select(ParkedEvent, WebhookDelivery.event, WebhookDelivery.payload)
                         .join(WebhookDelivery, WebhookDelivery.webhook_id == ParkedEvent.webhook_id)
                         .order_by(ParkedEvent.id)).all()
        return [{"webhook_id": p.webhook_id, "event": ev, "reason": p.reason, "attempts": p.attempts,
                 "user": payload["user"]["username"], "course": payload["course"]["idnumber"],
                 "parked_at": p.parked_at.isoformat()} for p, ev, payload in rows]


__all__ = ["course_source", "list_parked", "process_pending", "store_record"]
