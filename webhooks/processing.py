"""Inbox -> learning records. Runs after the receiving commit (inline in the receiver, and again from
`intake replay` / the scheduler), so a failure here never loses a delivery: it stays pending or parked."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from creditbridge.records import LearningRecord
from creditbridge.records.id_number import mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.copy import copy_rows
from creditbridge.store.keys import in_ids, in_keys, keys_value
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.webhooks.counters import bump_in
from creditbridge.webhooks.payload import EventType, PayloadRefused, WebhookPayload, refuse_nul, validation_detail

log = logging.getLogger(__name__)


class Unresolvable(Exception):
    """The event names a user or course this store does not know (yet). Parked, retried after a sync."""


class NotCreditable(Exception):
    """A delivery kept and acknowledged that makes no learning record (a course-total grade, a grade naming no
    item): processed, never parked, and counted in intake_counter as `not_creditable_<reason>`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Grade items whose grade aggregates the items that are sent on their own: a record of it would count them twice.
TOTAL_ITEMTYPES = frozenset({"course", "category"})


class Poison(Unresolvable):
    """The delivery itself can never become a record (its stored body does not validate, or it lacks what its
    event needs). Parked and retried like the others, but only `webhooks.max_attempts` times in all; then it is
    `rejected` and left alone (docs/webhooks.md)."""


def course_source(site: str, userid: int, courseid: int) -> str:
    """Source of a course completion. Reconciliation derives it the same way, so both paths make one row."""
    return f"moodle:{site.rstrip('/')}:course_completed:{userid}:{courseid}"


def activity_name(idnumber: str | None, cmid: int) -> str:
    """How a learning record names an activity: its idnumber, else `cm<cmid>`. Reconciliation names it the same
    way, so both paths agree on which activity a completion belongs to."""
    return idnumber or f"cm{cmid}"


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
    if _has_source(s, rec.source):
        return False
    try:
        with s.begin_nested():
            s.add(row_from_record(rec, origin))
    except IntegrityError:
        # A duplicate only if a twin's row with this source is there now. Any other refusal (a CHECK, a trigger,
        # another constraint) is an error of this record: taking it for a duplicate would mark the delivery
        # processed with no record stored.
        if not _has_source(s, rec.source):
            raise
        return False
    return True


def _has_source(s: Session, source: str) -> bool:
    return s.scalar(select(LearningRecordRow.id).where(LearningRecordRow.source == source)) is not None


def row_from_record(rec: LearningRecord, origin: str) -> LearningRecordRow:
    def dec(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(str(v))
    return LearningRecordRow(
        programme=rec.programme, teacher=rec.teacher, course=rec.course, activity=rec.activity,
        kind=rec.kind.value, hours=dec(rec.hours), minutes=dec(rec.minutes), score=dec(rec.score),
        passed=rec.passed, occurred_at=rec.occurred_at, source=rec.source, origin=origin)


def _parse(raw: Any) -> WebhookPayload:
    """The stored body as a payload. One that does not validate (stored before the receiver checked as much as it
    does now: a NUL in a string, a grade of 1e400) is poison: parked, then rejected after max_attempts."""
    try:
        refuse_nul(raw)
        return WebhookPayload.model_validate(raw)
    except PayloadRefused as e:
        raise Poison(f"invalid payload: {e}") from None
    except ValidationError as e:
        raise Poison(f"invalid payload: {validation_detail(e)}") from None


def records_for(s: Session, p: WebhookPayload, programme: str) -> list[LearningRecord]:
    check_creditable(p)
    teacher = find_teacher(s, programme, p.user.id, p.user.username)
    if teacher is None:
        raise Unresolvable(f"unknown Moodle user {p.user.id} ({p.user.username})")
    course = find_course(s, programme, p.course.id, p.course.idnumber)
    if course is None:
        raise Unresolvable(f"unknown course {p.course.id} (idnumber {p.course.idnumber!r})")
    return _checked_records(p, teacher.id_number, course.code, course.hours, programme)


def _checked_records(p: WebhookPayload, teacher: str, code: str, hours: Decimal,
                     programme: str) -> list[LearningRecord]:
    try:
        return _records(p, teacher, code, hours, programme)
    except ValidationError as e:
        # e.g. a stored ID number with a wrong check digit: parked until the roster is corrected
        raise Unresolvable(f"record invalid: {e.errors(include_input=False)[0]['msg']}") from e


def _records(p: WebhookPayload, teacher: str, code: str, hours: Decimal, programme: str) -> list[LearningRecord]:
    site = p.site.rstrip("/")
    when = datetime.fromtimestamp(p.timecreated, UTC)
    minutes = None if p.timespent is None else round(p.timespent / 60, 2)
    base: dict[str, Any] = {"teacher": teacher, "programme": programme, "course": code, "occurred_at": when}
    if p.event is EventType.course_completed:
        return [LearningRecord(**base, kind="course", passed=True, hours=float(hours), minutes=minutes,
                               source=course_source(site, p.user.id, p.course.id))]
    if p.event is EventType.grade_updated:
        activity, key = _graded_item(p)
        return [LearningRecord(**base, activity=activity, kind="score", score=p.grade, minutes=minutes,
                               source=f"moodle:{site}:grade_updated:{p.user.id}:{key}:{p.timecreated}:{p.objectid}")]
    if p.activity is None:
        raise Poison(f"{p.event.value} without an activity")
    activity = activity_name(p.activity.idnumber, p.activity.cmid)
    tail = f"{p.user.id}:{p.activity.cmid}:{p.timecreated}"
    if p.completionstate == 0:
        return [LearningRecord(**base, activity=activity, kind="revocation",
                               source=f"moodle:{site}:activity_revoked:{tail}")]
    return [LearningRecord(**base, activity=activity, kind="activity", passed=p.completionstate != 3,
                           minutes=minutes, source=f"moodle:{site}:activity_completed:{tail}")]


def check_creditable(p: WebhookPayload) -> None:
    """NotCreditable for a delivery that makes no record whoever its user and course are: a course or category
    total, and plugin 1.0.0's grades that name neither activity nor grade item (its manual items and course
    totals look the same). Checked before the user and course are looked up, so these are never parked."""
    if p.event is not EventType.grade_updated:
        return
    if p.gradeitem is not None and p.gradeitem.itemtype in TOTAL_ITEMTYPES:
        raise NotCreditable("course_total")
    if p.activity is None and p.gradeitem is None:
        raise NotCreditable("grade_without_item")


def _graded_item(p: WebhookPayload) -> tuple[str, str]:
    """(activity code, source key) of a creditable grade: its activity (a module's grade item), else its grade
    item (a manual item, e.g. a workshop host's score)."""
    check_creditable(p)
    if p.activity is not None:
        return p.activity.idnumber or f"cm{p.activity.cmid}", str(p.activity.cmid)
    assert p.gradeitem is not None  # check_creditable refused a grade naming neither
    return p.gradeitem.idnumber or f"gi{p.gradeitem.id}", f"gi{p.gradeitem.id}"


# Above any delivery id (an Integer column): the bound of a run given its webhook ids.
_NO_UPPER = 2**31 - 1

# Deliveries per transaction: one commit, a handful of IN queries and one bulk insert per chunk instead of a
# transaction and ~6 queries per delivery. Bounded, so memory stays flat and row locks stay short on a big inbox.
CHUNK_SIZE = 200

# The running tally of a run, keyed by IntakeResult's field names (a delivery's new state is one of them).
Counts = dict[str, int]


def _new_counts() -> Counts:
    return {"processed": 0, "records": 0, "duplicates": 0, "parked": 0, "rejected": 0, "withdrawn": 0}


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What one run over the inbox did: deliveries `processed` into `records` (`duplicates`: records already
    stored), `parked` or `rejected` this run, and activity completions `withdrawn` by revocations."""

    processed: int = 0
    records: int = 0
    duplicates: int = 0
    parked: int = 0
    rejected: int = 0
    withdrawn: int = 0

    def as_json(self) -> dict[str, int]:
        # The fields, in order: the keys `intake replay --json` prints and the scheduler's ledger stores.
        return asdict(self)


# One delivery this run could not turn into a record: {"webhook_id", "state" (parked | rejected), "reason",
# "attempts"}; the reason never holds an ID number in full.
Failure = dict[str, Any]


def process_pending(settings: Settings, store: Store, *, webhook_ids: Sequence[str] | None = None,
                    include_parked: bool = True, include_rejected: bool = False, chunk_size: int = CHUNK_SIZE,
                    failures: list[Failure] | None = None, received_before: datetime | None = None,
                    limit: int | None = None) -> IntakeResult:
    """Turn pending (and, by default, parked) deliveries into learning records, `chunk_size` per transaction.

    On PostgreSQL each chunk is claimed with FOR UPDATE SKIP LOCKED, so concurrent processors (receiver
    workers, `intake replay`, the scheduler) never take the same delivery. A chunk that fails for any reason
    other than an unknown user/course (e.g. a concurrent twin's insert, a value the database refuses) is
    rolled back and redone one delivery at a time, so one poison delivery cannot hold back the others.
    A poison delivery (see Poison, and any delivery whose own processing raises) is rejected once it has been
    tried `webhooks.max_attempts` times; `include_rejected` tries rejected ones again (after a fix).
    Each delivery parked or rejected in this run is appended to `failures` when given. `received_before` takes
    only deliveries stored before that time (the continuous worker's sweep leaves younger ones to the receivers'
    own background processing); `limit` takes at most that many deliveries (a chunk never exceeds what is left
    of it)."""
    programme = settings.sync.programme
    max_attempts = settings.webhooks.max_attempts
    states = ["pending", "parked"] if include_parked else ["pending"]
    if include_rejected:
        states.append("rejected")
    wids = None if webhook_ids is None else list(webhook_ids)
    chunk_size = max(1, chunk_size)
    out = _new_counts()
    if wids is not None:
        upper: int | None = _NO_UPPER  # the ids bound the work already: no round trip for the newest
    else:
        with store.session() as s:
            # Only what is waiting now: deliveries stored while we run are left for the next call, so this returns.
            q = select(func.max(WebhookDelivery.id)).where(WebhookDelivery.state.in_(states))
            if received_before is not None:
                q = q.where(WebhookDelivery.received_at < received_before)
            upper = s.scalar(q)
    if upper is None or wids == []:
        return IntakeResult(**out)
    after = 0
    left = limit
    while True:
        claimed: list[int] = []
        failed: list[Failure] = []
        size = chunk_size if left is None else max(1, min(chunk_size, left))
        try:
            with store.session() as s:
                counts = _process_chunk(s, programme, states, wids, after, upper, size, claimed, max_attempts,
                                        failed, received_before)
        except Exception as e:
            if not claimed:
                raise  # the claim itself failed: nothing to redo, the database is the problem
            # No traceback: one line, masked; each delivery's own failure is recorded by the one-by-one pass.
            log.warning("chunk of %d deliveries failed (%s); redoing them one by one", len(claimed),
                        _failure_reason(e))
            counts, failed = _new_counts(), []
            for did in claimed:
                _process_one_safely(store, did, states, programme, counts, max_attempts, failed)
        if failures is not None:
            failures.extend(failed)
        if not claimed:
            return IntakeResult(**out)
        for k, v in counts.items():
            out[k] += v
        if len(claimed) < size:  # the rest (if any) is locked by another processor, which does it
            return IntakeResult(**out)
        if wids is not None and len(claimed) >= len(wids):  # every id given was taken: no empty round trip
            return IntakeResult(**out)
        if left is not None:
            left -= len(claimed)
            if left <= 0:
                return IntakeResult(**out)
        after = claimed[-1]


def _process_chunk(s: Session, programme: str, states: list[str], wids: list[str] | None, after: int,
                   upper: int, limit: int, claimed: list[int], max_attempts: int, failed: list[Failure],
                   received_before: datetime | None = None) -> Counts:
    """One transaction over the next `limit` deliveries after id `after`; fills `claimed` before any risk.
    Lists of keys (up to a chunk's worth) are bound as one parameter each (store/keys.py): at 1,000 per chunk,
    rendering and parsing a placeholder per key cost more than the lookups themselves (BENCHMARKS.md)."""
    d = s.get_bind().dialect
    q = (select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.payload)
         .where(WebhookDelivery.state.in_(states), WebhookDelivery.id > after, WebhookDelivery.id <= upper)
         .order_by(WebhookDelivery.id).limit(limit).with_for_update(skip_locked=True))
    params: dict[str, Any] = {}
    if wids is not None:
        q = q.where(in_keys(d, WebhookDelivery.webhook_id, "wids"))
        params["wids"] = keys_value(d, wids)
    if received_before is not None:
        q = q.where(WebhookDelivery.received_at < received_before)
    rows = s.execute(q, params).all()
    claimed.extend(r.id for r in rows)
    out = _new_counts()
    if not rows:
        return out

    parsed: list[tuple[int, str, WebhookPayload | Unresolvable]] = []
    for r in rows:
        try:
            parsed.append((r.id, r.webhook_id, _parse(r.payload)))
        except Unresolvable as e:
            parsed.append((r.id, r.webhook_id, e))
    payloads = [p for _, _, p in parsed if isinstance(p, WebhookPayload)]
    teachers = _teacher_lookup(s, programme, payloads)
    courses = _course_lookup(s, programme, payloads)

    # Records in delivery order; a delivery whose user or course is unknown is parked with its reason.
    done: list[tuple[int, str]] = []
    parked: list[tuple[int, str, Unresolvable]] = []
    not_creditable: list[str] = []
    wanted: list[LearningRecord] = []
    for did, wid, p in parsed:
        try:
            if isinstance(p, Unresolvable):
                raise p
            check_creditable(p)
            teacher = teachers.get(("id", p.user.id)) or (teachers.get(("name", p.user.username))
                                                           if p.user.username else None)
            if teacher is None:
                raise Unresolvable(f"unknown Moodle user {p.user.id} ({p.user.username})")
            course = (courses.get(("code", p.course.idnumber)) if p.course.idnumber else None) \
                or courses.get(("id", p.course.id))
            if course is None:
                raise Unresolvable(f"unknown course {p.course.id} (idnumber {p.course.idnumber!r})")
            wanted.extend(_checked_records(p, teacher, course[0], course[1], programme))
        except Unresolvable as e:
            parked.append((did, wid, e))
            continue
        except NotCreditable as e:
            not_creditable.append(e.reason)
        done.append((did, wid))

    existing = set(s.scalars(select(LearningRecordRow.source).where(in_keys(d, LearningRecordRow.source, "src")),
                             {"src": keys_value(d, {r.source for r in wanted})})) if wanted else set()
    new_rows: list[dict[str, Any]] = []
    inserted: list[LearningRecord] = []
    for rec in wanted:
        if rec.source in existing:
            out["duplicates"] += 1
            continue
        existing.add(rec.source)
        new_rows.append(_row_values(rec))
        inserted.append(rec)
    if new_rows:
        _insert_records(s, new_rows)
        out["records"] += len(new_rows)
        # After the insert, so the order of the chunk does not matter: a revocation withdraws this chunk's
        # completions as well as stored ones, and a completion arriving after its revocation is withdrawn too.
        out["withdrawn"] += apply_revocations(s, inserted)

    now = utcnow()
    if done:
        s.execute(update(WebhookDelivery).where(in_ids(d, WebhookDelivery.id))
                  .values(state="processed", processed_at=now).execution_options(synchronize_session=False),
                  {"ids": keys_value(d, [i for i, _ in done])})
        s.execute(delete(ParkedEvent).where(in_keys(d, ParkedEvent.webhook_id))
                  .execution_options(synchronize_session=False), {"keys": keys_value(d, [w for _, w in done])})
        out["processed"] += len(done)
    for reason, n in Counter(not_creditable).items():
        bump_in(s, f"not_creditable_{reason}", n)
    if parked:
        known = {p.webhook_id: p for p in s.scalars(
            select(ParkedEvent).where(in_keys(d, ParkedEvent.webhook_id)),
            {"keys": keys_value(d, [w for _, w, _ in parked])})}
        by_state: dict[str, list[int]] = {"parked": [], "rejected": []}
        for did, wid, why in parked:
            state = _record_attempt(s, known.get(wid), wid, why, max_attempts, now, failed)
            by_state[state].append(did)
            out[state] += 1
        for state, ids in by_state.items():
            if ids:
                s.execute(update(WebhookDelivery).where(in_ids(d, WebhookDelivery.id))
                          .values(state=state).execution_options(synchronize_session=False),
                          {"ids": keys_value(d, ids)})
    return out


def _insert_records(s: Session, rows: list[dict[str, Any]]) -> None:
    """One statement for the chunk's records. On PostgreSQL a COPY: psycopg runs an executemany as one INSERT
    per row, and each INSERT fires the statement-level mark triggers of migration 0008 (a credit_mark insert
    and its NOTIFY trigger) once more, a thousand times per chunk; COPY fires them once. A twin's row with
    the same source makes the COPY fail like the INSERT did: the chunk is redone one delivery at a time."""
    if s.get_bind().dialect.name != "postgresql":
        s.execute(insert(LearningRecordRow), rows)
        return
    cols = list(rows[0])
    now = utcnow()  # the model's Python-side default, which COPY does not apply
    copy_rows(s.connection(), LearningRecordRow.__tablename__, [*cols, "created_at"],
              ([*(r[c] for c in cols), now] for r in rows))


def _record_attempt(s: Session, pe: ParkedEvent | None, wid: str, e: Unresolvable, max_attempts: int,
                    now: datetime, failed: list[Failure]) -> str:
    """Note one failed attempt at a delivery in its parked_event row (added on the first); the delivery's new
    state: `rejected` for poison tried max_attempts times, else `parked`."""
    reason = mask_id_numbers(str(e))[:500]
    if pe is None:
        pe = ParkedEvent(webhook_id=wid, reason=reason, attempts=1, parked_at=now, last_tried_at=now)
        s.add(pe)
    else:
        pe.reason, pe.attempts, pe.last_tried_at = reason, pe.attempts + 1, now
    state = "rejected" if isinstance(e, Poison) and pe.attempts >= max_attempts else "parked"
    failed.append({"webhook_id": wid, "state": state, "reason": reason, "attempts": pe.attempts})
    return state


def _teacher_lookup(s: Session, programme: str, payloads: list[WebhookPayload]) -> dict[tuple[str, Any], str]:
    """("id", moodle user id) / ("name", username) -> ID number, for the users of this chunk only.
    The lowest teacher id wins a tie, like the one-by-one lookup's `.first()` on the same index order."""
    found: dict[tuple[str, Any], str] = {}
    d = s.get_bind().dialect
    user_ids = {p.user.id for p in payloads}
    if user_ids:
        for uid, idn in s.execute(select(Teacher.moodle_user_id, Teacher.id_number)
                                  .where(Teacher.programme == programme, in_ids(d, Teacher.moodle_user_id))
                                  .order_by(Teacher.id), {"ids": keys_value(d, user_ids)}):
            found.setdefault(("id", uid), idn)
    names = {p.user.username for p in payloads if p.user.username and ("id", p.user.id) not in found}
    if names:
        for name, idn in s.execute(select(Teacher.username, Teacher.id_number)
                                   .where(Teacher.programme == programme, in_keys(d, Teacher.username))
                                   .order_by(Teacher.id), {"keys": keys_value(d, names)}):
            found.setdefault(("name", name), idn)
    return found


def _course_lookup(s: Session, programme: str, payloads: list[WebhookPayload]
                   ) -> dict[tuple[str, Any], tuple[str, Decimal]]:
    """("code", catalog code) / ("id", Moodle course id) -> (code, hours), for the courses of this chunk."""
    found: dict[tuple[str, Any], tuple[str, Decimal]] = {}
    d = s.get_bind().dialect
    codes = {p.course.idnumber for p in payloads if p.course.idnumber}
    if codes:
        for code, hours in s.execute(select(CatalogCourse.code, CatalogCourse.hours)
                                     .where(CatalogCourse.programme == programme, in_keys(d, CatalogCourse.code))
                                     .order_by(CatalogCourse.id), {"keys": keys_value(d, codes)}):
            found.setdefault(("code", code), (code, hours))
    course_ids = {p.course.id for p in payloads if ("code", p.course.idnumber) not in found}
    if course_ids:
        for cid, code, hours in s.execute(
                select(CatalogCourse.moodle_course_id, CatalogCourse.code, CatalogCourse.hours)
                .where(CatalogCourse.programme == programme, in_ids(d, CatalogCourse.moodle_course_id))
                .order_by(CatalogCourse.id), {"ids": keys_value(d, course_ids)}):
            found.setdefault(("id", cid), (code, hours))
    return found


def _row_values(rec: LearningRecord) -> dict[str, Any]:
    def dec(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(str(v))
    return {"programme": rec.programme, "teacher": rec.teacher, "course": rec.course, "activity": rec.activity,
            "kind": rec.kind.value, "hours": dec(rec.hours), "minutes": dec(rec.minutes), "score": dec(rec.score),
            "passed": rec.passed, "occurred_at": rec.occurred_at, "source": rec.source, "origin": "webhook",
            "withdrawn_by": None}


def apply_revocations(s: Session, inserted: Sequence[LearningRecord]) -> int:
    """Withdrawals owed by records just inserted (in this session), in both arrival orders: a revocation
    withdraws the stored activity completions of its activity at or before its time; an activity completion
    whose revocation was stored before it (a sender's retry arriving late, two workers, an import) is withdrawn
    by the first revocation at or after its time. The number of completions withdrawn."""
    _serialize_per_activity(s, inserted)
    n = 0
    for rec in sorted((r for r in inserted if r.kind == "revocation"), key=lambda r: r.occurred_at):
        n += _withdraw_stored(s, rec)
    late = [r.source for r in inserted if r.kind == "activity"]
    for k in range(0, len(late), 500):
        n += _withdraw_revoked(s, late[k:k + 500])
    return n


def _serialize_per_activity(s: Session, inserted: Sequence[LearningRecord]) -> None:
    """On PostgreSQL, wait for any other transaction that stored a completion or revocation of the same activity
    to commit: otherwise a revocation and its completion processed at once by two workers would not see each
    other's uncommitted rows, and neither would withdraw. Transaction-level advisory locks, taken in key order
    so two transactions cannot deadlock on them. (SQLite has one writer at a time.)"""
    if s.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_activity_key(r) for r in inserted if r.kind in ("activity", "revocation")})
    if keys:
        s.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) "
                       "WITH ORDINALITY AS t(k, n) ORDER BY n"), {"keys": keys})


def _activity_key(rec: LearningRecord) -> int:
    raw = "\x1f".join(("creditbridge.activity", rec.programme, rec.teacher, rec.course, rec.activity or ""))
    return int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big", signed=True)


def _withdraw_stored(s: Session, rec: LearningRecord) -> int:
    """The stored activity completions this revocation revokes, in one UPDATE."""
    res = s.execute(update(LearningRecordRow).where(
        LearningRecordRow.programme == rec.programme, LearningRecordRow.teacher == rec.teacher,
        LearningRecordRow.course == rec.course, LearningRecordRow.activity == rec.activity,
        LearningRecordRow.kind == "activity", LearningRecordRow.withdrawn_by.is_(None),
        LearningRecordRow.occurred_at <= rec.occurred_at).values(withdrawn_by=rec.source)
        .execution_options(synchronize_session=False))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def _withdraw_revoked(s: Session, sources: list[str]) -> int:
    """The activity completions among `sources` that a stored revocation at or after their time revokes."""
    a, r = LearningRecordRow, aliased(LearningRecordRow)
    revoking = (select(r.source).where(
        r.kind == "revocation", r.programme == a.programme, r.teacher == a.teacher, r.course == a.course,
        r.activity == a.activity, r.occurred_at >= a.occurred_at)
        .order_by(r.occurred_at, r.id).limit(1).correlate(a).scalar_subquery())
    res = s.execute(update(a).where(a.source.in_(sources), a.kind == "activity", a.withdrawn_by.is_(None),
                                    revoking.is_not(None)).values(withdrawn_by=revoking)
                    .execution_options(synchronize_session=False))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def process_pending_one_by_one(settings: Settings, store: Store, *, webhook_ids: Sequence[str] | None = None,
                               include_parked: bool = True) -> IntakeResult:
    """The per-delivery path (one transaction per delivery) on its own: the chunk path's fallback, and the
    baseline of bench/inbox_processing.py."""
    programme = settings.sync.programme
    states = ["pending", "parked"] if include_parked else ["pending"]
    with store.session() as s:
        q = select(WebhookDelivery.id).where(WebhookDelivery.state.in_(states)).order_by(WebhookDelivery.id)
        if webhook_ids is not None:
            q = q.where(WebhookDelivery.webhook_id.in_(list(webhook_ids)))
        ids = list(s.scalars(q))
    out = _new_counts()
    for did in ids:
        _process_one_safely(store, did, states, programme, out, settings.webhooks.max_attempts, [])
    return IntakeResult(**out)


def _process_one_safely(store: Store, did: int, states: list[str], programme: str, out: Counts,
                        max_attempts: int, failed: list[Failure]) -> None:
    """`_process_one`; if the delivery itself makes it fail, it is parked as poison with the error as its reason
    (retried on the next runs, listed by `intake parked`, rejected after max_attempts) instead of stopping the
    deliveries after it."""
    mine: list[Failure] = []
    try:
        with store.session() as s:
            _process_one(s, did, states, programme, out, max_attempts, mine)
    except OperationalError:
        # Locked, deadlocked, connection lost: nothing wrong with the delivery. It stays pending for the next run.
        raise
    except Exception as e:
        reason = _failure_reason(e)
        log.warning("delivery %d failed: %s", did, reason)
        mine = []
        with store.session() as s:
            d = s.scalars(select(WebhookDelivery).where(WebhookDelivery.id == did,
                                                        WebhookDelivery.state.in_(states))
                          .with_for_update(skip_locked=True)).first()
            if d is not None:
                out[_park(s, d, Poison(reason), max_attempts, mine)] += 1
    failed.extend(mine)


def _failure_reason(e: Exception) -> str:
    # The driver's own message (not SQLAlchemy's, which repeats the SQL and its parameters), first line only,
    # with any ID number masked.
    msg = str(getattr(e, "orig", None) or e).strip().splitlines()
    return mask_id_numbers(f"processing failed: {type(e).__name__}: {msg[0] if msg else ''}")[:500]


def _process_one(s: Session, did: int, states: list[str], programme: str, out: Counts, max_attempts: int,
                 failed: list[Failure]) -> None:
    d = s.scalars(select(WebhookDelivery).where(WebhookDelivery.id == did, WebhookDelivery.state.in_(states))
                  .with_for_update(skip_locked=True)).first()
    if d is None:  # another worker took it
        return
    try:
        recs = records_for(s, _parse(d.payload), programme)
    except Unresolvable as e:
        out[_park(s, d, e, max_attempts, failed)] += 1
        return
    except NotCreditable as e:
        recs = []
        bump_in(s, f"not_creditable_{e.reason}")
    inserted = [rec for rec in recs if store_record(s, rec, "webhook")]
    out["records"] += len(inserted)
    out["duplicates"] += len(recs) - len(inserted)
    out["withdrawn"] += apply_revocations(s, inserted)
    d.state = "processed"
    d.processed_at = utcnow()
    parked = s.scalars(select(ParkedEvent).where(ParkedEvent.webhook_id == d.webhook_id)).first()
    if parked is not None:
        s.delete(parked)
    out["processed"] += 1


def _park(s: Session, d: WebhookDelivery, e: Unresolvable, max_attempts: int, failed: list[Failure]) -> str:
    """Park (or reject) one delivery; its new state."""
    pe = s.scalars(select(ParkedEvent).where(ParkedEvent.webhook_id == d.webhook_id)).first()
    d.state = _record_attempt(s, pe, d.webhook_id, e, max_attempts, utcnow(), failed)
    return d.state


def list_parked(store: Store, states: Sequence[str] = ("parked", "rejected")) -> list[dict[str, Any]]:
    """Parked and rejected deliveries, oldest first, with reason and attempts. Read from bodies that may be
    poison, so every field is looked up defensively; user and course are shown with ID numbers masked."""
    with store.session() as s:
        rows = s.execute(select(ParkedEvent, WebhookDelivery.event, WebhookDelivery.state, WebhookDelivery.payload)
                         .join(WebhookDelivery, WebhookDelivery.webhook_id == ParkedEvent.webhook_id)
                         .where(WebhookDelivery.state.in_(list(states)))
                         .order_by(ParkedEvent.id)).all()
        return [{"webhook_id": p.webhook_id, "event": ev, "state": state, "reason": p.reason,
                 "attempts": p.attempts, "user": _shown(payload, "user", "username"),
                 "course": _shown(payload, "course", "idnumber"), "parked_at": p.parked_at.isoformat()}
                for p, ev, state, payload in rows]


def _shown(payload: Any, part: str, key: str) -> str:
    value = payload.get(part) if isinstance(payload, dict) else None
    value = value.get(key) if isinstance(value, dict) else None
    return mask_id_numbers(str(value).replace("\x00", "\\x00"))[:100] if value is not None else ""


__all__ = ["CHUNK_SIZE", "IntakeResult", "apply_revocations", "course_source", "list_parked", "process_pending",
           "process_pending_one_by_one", "store_record"]
