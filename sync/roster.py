"""Carrying a roster plan out in Moodle: accounts first, then cohorts and enrolments.

Teacher rows are written only once Moodle has the account change (`row_hash` = what Moodle was
told about the person). `applied_hash` catches up with `row_hash` once the teacher's cohorts and
enrolments are right too, so a teacher whose run was cut short stays pending and the next run
finishes them, even when the file did not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import attrgetter
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from creditbridge.connector.errors import DuplicateError, MoodleError
from creditbridge.connector.moodle import BatchResult
from creditbridge.programmes import ProgrammeFacts
from creditbridge.records.id_number import mask_id_number
from creditbridge.store.models.core import Teacher
from creditbridge.sync.apply import ApplyContext, refusal
from creditbridge.sync.cohorts import Membership, cohort_specs, load_refs, sync_memberships
from creditbridge.sync.electives import configure_courses, forget_deleted_audiences, forget_missing_instances
from creditbridge.sync.enrolment import (
    Enroller,
    Learner,
    load_courses,
    save_fingerprint,
    stored_fingerprint,
)
from creditbridge.sync.moodle_users import (
    UsernameError,
    create_payload,
    email_key,
    update_payload,
    username_for,
)
from creditbridge.sync.outcome import PlanLine
from creditbridge.sync.plan import RosterPlan, TeacherAction
from creditbridge.sync.plan_kernel import _gc_paused
from creditbridge.sync.records import ActionKind

EMAIL_COLUMN = "邮箱"
ID_COLUMN = "身份证号"
CODE_COLUMN = "教师编号"
PLAN_LINES_MAX = 200_000
PASS_CHUNK = 1000

_COUNTERS = {ActionKind.CREATE: "created", ActionKind.UPDATE: "updated", ActionKind.TRANSFER: "transferred",
             ActionKind.SUSPEND: "suspended", ActionKind.REACTIVATE: "reactivated"}


def _column_for(error: MoodleError) -> str:
    text = f"{error.errorcode or ''} {error.message}".lower()
    if "email" in text or "e-mail" in text:
        return EMAIL_COLUMN
    if "idnumber" in text:
        return ID_COLUMN
    return ""


def _reason(error: MoodleError) -> str:
    return f"Moodle refused: {refusal(error)}"


def plan_line(action: TeacherAction) -> PlanLine:
    r = action.roster_row
    detail = ("moved: " + ", ".join(action.transfer_levels)) if action.transfer_levels else (
        "not in the full export" if r is None else "")
    return PlanLine(action.kind.value, r.row if r else None, mask_id_number(action.id_number), r.name if r else "",
                    detail)


def plan_line_column(actions: list[TeacherAction]) -> list[PlanLine]:
    """`plan_line` of each action. Column by column when every action has its row and no transfer levels (a
    province's first sync: 200,000 creates), a Python call per line fewer; else line by line."""
    rows = list(map(_ROSTER_ROW, actions))
    if None in rows or any(map(_TRANSFER_LEVELS, actions)):
        return list(map(plan_line, actions))
    return list(map(PlanLine, map(_KIND_TEXT.__getitem__, map(_KIND, actions)), map(_ROW, rows),
                    map(mask_id_number, map(_ID_NUMBER, actions)), map(_NAME, rows)))


def plan_lines(ctx: ApplyContext, actions: Iterable[TeacherAction]) -> None:
    """The report's plan sheet (the first PLAN_LINES_MAX actions: a province's first sync has a million). Called
    on each wave of actions; once the sheet is full, the first action left off adds a note, once."""
    out = ctx.outcome
    room = max(PLAN_LINES_MAX - len(out.plan), 0)
    if room:
        # The actions may come from a second pass over the roster (apply), the lines stay: 200,000 objects that
        # cannot form cycles, which the collector would otherwise scan again and again (a fifth of this step).
        with _gc_paused():
            listed = list(islice(actions, room + 1))
            out.plan += plan_line_column(listed[:room])
    else:
        listed = list(islice(actions, 1))
    note = f"the plan lists the first {PLAN_LINES_MAX} actions only"
    if len(listed) > room and note not in out.notes:
        out.notes.append(note)


_ROSTER_ROW = attrgetter("roster_row")
_TRANSFER_LEVELS = attrgetter("transfer_levels")
_KIND = attrgetter("kind")
_ID_NUMBER = attrgetter("id_number")
_ROW = attrgetter("row")
_NAME = attrgetter("name")
_KIND_TEXT = {kind: kind.value for kind in ActionKind}


def _store_teachers(ctx: ApplyContext, done: Sequence[tuple[TeacherAction, int, str]]) -> None:
    """Record accounts Moodle now has: (action, Moodle user id, username)."""
    if not done:
        return
    with ctx.store.session() as s:
        ids = [a.id_number for a, _, _ in done]
        existing = {t.id_number: t for t in s.scalars(select(Teacher).where(
            Teacher.programme == ctx.programme, Teacher.id_number.in_(ids)))}
        for action, moodle_id, username in done:
            t = existing.get(action.id_number)
            row = action.roster_row
            if t is None:
                t = Teacher(programme=ctx.programme, id_number=action.id_number)
                s.add(t)
            t.moodle_user_id, t.username = moodle_id, username
            if row is None:  # suspended for being absent from a full export: only the status changes
                t.status = "suspended"
                continue
            t.name, t.school_code, t.school_name = row.name, row.school_code, row.school_name
            t.county, t.city, t.stage, t.subject, t.rural = row.county, row.city, row.stage, row.subject, row.rural
            t.phone, t.email, t.teacher_code = row.phone, row.email, row.teacher_code
            t.status = "active" if row.active else "suspended"
            t.row_hash = row.row_hash


def _count(ctx: ApplyContext, actions: Iterable[TeacherAction]) -> None:
    for a in actions:
        name = _COUNTERS.get(a.kind)
        if name:
            setattr(ctx.outcome, name, getattr(ctx.outcome, name) + 1)


def _create_batch(ctx: ApplyContext, actions: list[TeacherAction]) -> None:
    settings = ctx.settings.sync
    items: list[dict[str, Any]] = []
    by_item: dict[int, tuple[TeacherAction, str]] = {}
    for a in actions:
        row = a.roster_row
        assert row is not None
        try:
            username = username_for(settings, row)
        except UsernameError as e:
            ctx.outcome.error(row.row, CODE_COLUMN, str(e))
            continue
        item = create_payload(settings, row, username)
        items.append(item)
        by_item[id(item)] = (a, username)

    def record(result: BatchResult) -> None:
        done = [(by_item[id(item)][0], int(answer["id"]), by_item[id(item)][1]) for item, answer in result.succeeded]
        _store_teachers(ctx, done)
        _count(ctx, (a for a, _, _ in done))

    result = ctx.send(ctx.client.create_users, items, record)
    adopt: list[tuple[TeacherAction, str]] = []
    for item, error in result.failed:
        a, username = by_item[id(item)]
        if isinstance(error, DuplicateError) and error.errorcode == "usernameexists":
            # Our username is derived from the teacher alone: this is the account an interrupted run made.
            adopt.append((a, username))
        else:
            ctx.outcome.error(a.roster_row.row if a.roster_row else None, _column_for(error), _reason(error))
    if adopt:
        found = {u["username"]: int(u["id"]) for u in ctx.client.get_users_by_field(
            "username", [u for _, u in adopt])}
        pairs = []
        for a, username in adopt:
            if username in found:
                pairs.append((a, found[username], username))
            else:
                ctx.outcome.error(a.roster_row.row if a.roster_row else None, "", "username taken in Moodle "
                                  "but the account cannot be read back")
        _update_batch(ctx, pairs)


def _update_batch(ctx: ApplyContext, pairs: Sequence[tuple[TeacherAction, int, str]]) -> None:
    settings = ctx.settings.sync
    items: list[dict[str, Any]] = []
    by_item: dict[int, tuple[TeacherAction, int, str]] = {}
    for a, moodle_id, username in pairs:
        row = a.roster_row
        if row is None:
            item: dict[str, Any] = {"id": moodle_id, "suspended": 1}
        else:
            item = update_payload(settings, row, username, moodle_id, suspended=not row.active)
        items.append(item)
        by_item[id(item)] = (a, moodle_id, username)

    def record(result: BatchResult) -> None:
        done = [by_item[id(item)] for item, _ in result.succeeded]
        _store_teachers(ctx, done)
        _count(ctx, (a for a, _, _ in done))

    result = ctx.send(ctx.client.update_users, items, record)
    for item, error in result.failed:
        a, _, _ = by_item[id(item)]
        ctx.outcome.error(a.roster_row.row if a.roster_row else None, _column_for(error), _reason(error))


def _known_accounts(ctx: ApplyContext, ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
    with ctx.store.session() as s:
        return {i: (m, u) for i, m, u in s.execute(
            select(Teacher.id_number, Teacher.moodle_user_id, Teacher.username)
            .where(Teacher.programme == ctx.programme, Teacher.id_number.in_(ids)))}


class EmailClashes:
    """Rows of one file whose e-mails differ only by letter case: Moodle keeps one account per address.

    The first row of an address goes on; a later one is refused with one error naming both rows (checked as the
    actions are applied, so a province's plan is not read twice).
    """

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, int]] = {}

    def refused(self, ctx: ApplyContext, action: TeacherAction) -> bool:
        row = action.roster_row
        key = email_key(row.email if row is not None else None)
        if row is None or not row.active or not key:
            return False  # a leaver is suspended whatever its e-mail says
        owner, first_row = self.first.setdefault(key, (action.id_number, row.row))
        if owner == action.id_number:
            return False
        ctx.outcome.error(row.row, EMAIL_COLUMN,
                          f"e-mail clash: rows {first_row} and {row.row} give the same e-mail address (letter case "
                          f"aside), and Moodle allows one account per address; row {row.row} was not synced, "
                          "give one of them another address")
        return True


def apply_accounts(ctx: ApplyContext, plan: RosterPlan) -> dict[str, int]:
    """Create, update, transfer, suspend and reactivate accounts. Returns ID number -> file row."""
    rows_by_teacher: dict[str, int] = {}
    total = plan.action_count
    done = 0
    clashes = EmailClashes()
    for batch in ctx.batches(plan.actions):
        # The plan sheet is filled on the way: iterating a large plan's actions re-reads the file. Also past a
        # full sheet: the wave that first finds it full adds the note that actions were left off.
        plan_lines(ctx, batch)
        batch = [a for a in batch if not clashes.refused(ctx, a)]
        creates = [a for a in batch if a.kind is ActionKind.CREATE]
        others = [a for a in batch if a.kind is not ActionKind.CREATE]
        for a in batch:
            if a.roster_row is not None:
                rows_by_teacher[a.id_number] = a.roster_row.row
        if creates:
            _create_batch(ctx, creates)
        if others:
            accounts = _known_accounts(ctx, [a.id_number for a in others])
            pairs = []
            for a in others:
                moodle_id, username = accounts.get(a.id_number, (None, None))
                if moodle_id is None or username is None:
                    row = a.roster_row
                    if row is not None and row.active:
                        _create_batch(ctx, [TeacherAction(ActionKind.CREATE, a.id_number, row, None)])
                    continue
                pairs.append((a, moodle_id, username))
            if pairs:
                _update_batch(ctx, pairs)
        done += len(batch)
        ctx.progress("accounts", done, total)
    return rows_by_teacher


def _teachers_to_finish(ctx: ApplyContext, everyone: bool) -> Iterator[list[Any]]:
    """Pages of teachers in ID-number order (keyset paging: a province is never loaded at once)."""
    cols = (Teacher.id_number, Teacher.moodle_user_id, Teacher.stage, Teacher.subject, Teacher.city,
            Teacher.school_code, Teacher.status, Teacher.school_name, Teacher.county, Teacher.row_hash,
            Teacher.applied_hash)
    stmt = select(*cols).where(Teacher.programme == ctx.programme, Teacher.moodle_user_id.is_not(None))
    if not everyone:
        stmt = stmt.where(or_(Teacher.applied_hash.is_(None), Teacher.applied_hash != Teacher.row_hash))
    last = ""
    while True:
        with ctx.store.session() as s:
            page = s.execute(stmt.where(Teacher.id_number > last).order_by(Teacher.id_number)
                             .limit(PASS_CHUNK)).all()
        if not page:
            return
        yield list(page)
        last = page[-1].id_number


def finish_teachers(ctx: ApplyContext, rules: ProgrammeFacts, rows_by_teacher: dict[str, int] | None = None) -> None:
    """Cohorts and enrolments of every pending teacher; of every teacher when the catalog or the schools'
    topics changed since the last full pass (the fingerprint says)."""
    rows_by_teacher = rows_by_teacher or {}
    index = load_courses(ctx, rules)
    everyone = stored_fingerprint(ctx) != index.fingerprint
    if index.self_electives and forget_deleted_audiences(ctx):
        everyone = True  # their electives are configured again and every teacher's memberships checked
    configured = True
    # An elective whose self instance an administrator removed is configured again (memberships stay right).
    mend = index.self_electives and forget_missing_instances(ctx, index.moodle_ids, index.audiences)
    if (everyone or mend) and index.self_electives:
        # The catalog, the topics or the policy changed: the courses' enrolment methods first (audience
        # cohorts made, electives opened to them), then every teacher's memberships below.
        load_refs(ctx, "cohort")
        configured = configure_courses(ctx, index.moodle_ids, index.audiences)
    enroller: Enroller | None = None
    finished = 0
    for chunk in _teachers_to_finish(ctx, everyone):
        if enroller is None:  # only now: an unchanged re-run has nobody to finish and reads nothing more
            load_refs(ctx, "cohort")
            enroller = Enroller(ctx, rules, index)
        pending = [r for r in chunk if r.applied_hash is None or r.applied_hash != r.row_hash]
        learners = [Learner(r.id_number, r.moodle_user_id, r.stage, r.subject, r.city, r.school_code,
                            r.status == "active", rows_by_teacher.get(r.id_number)) for r in chunk]
        # Audience cohorts depend on the school's topics too: with the self policy, a pass over everyone (the
        # topics or the catalog changed) checks every teacher's memberships, a difference against the store.
        moving = chunk if index.self_electives and everyone else pending
        by_id = {w.id_number: w for w in learners}
        members = [Membership(r.id_number, r.moodle_user_id,
                              {**cohort_specs(r.school_code, r.school_name, r.county, r.city),
                               **enroller.audiences(by_id[r.id_number])},
                              rows_by_teacher.get(r.id_number)) for r in moving]
        cohorts_ok = sync_memberships(ctx, members)
        enrolled_ok = enroller.run(learners)
        moving_ids = {r.id_number for r in moving}
        done = [r for r in chunk if r.id_number in enrolled_ok and (r.id_number not in moving_ids
                                                                     or r.id_number in cohorts_ok)]
        done_ids = {r.id_number for r in done}
        failed = [r.id_number for r in chunk if r.id_number not in done_ids]
        with ctx.store.session() as s:
            caught_up = [{"i": r.id_number, "h": r.row_hash} for r in done if r.applied_hash != r.row_hash]
            if caught_up:
                table = Teacher.__table__
                s.connection().execute(update(table).where(table.c.programme == ctx.programme,
                                                           table.c.id_number == bindparam("i"))
                                       .values(applied_hash=bindparam("h")), caught_up)
            if failed:
                s.execute(update(Teacher).where(Teacher.programme == ctx.programme,
                                                Teacher.id_number.in_(failed)).values(applied_hash=None))
        finished += len(chunk)
        ctx.progress("cohorts and enrolments", finished, 0)
    if enroller is not None and enroller.short:
        ctx.outcome.notes.append(
            f"{len(enroller.short)} teacher(s) have fewer than {rules.lesson_cases} lesson cases: their pool has "
            "too few cases they did not record themselves; they are topped up when the catalog grows")
    if configured:  # a course left unconfigured makes the next run try again
        save_fingerprint(ctx, index.fingerprint)
