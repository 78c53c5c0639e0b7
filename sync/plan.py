"""The sync plan: what each roster row, catalog course and school topic choice means for Moodle.

The roster's state transitions are pure functions on named records (`classify`, `absent_kind`,
`hold_suspensions`, in roster_plan.py with `plan_roster_reference`, the readable definition of a roster
plan); `plan_roster` (plan_kernel.py) computes that plan fast for a province; `plan_catalog` and
`plan_topics` fold their rules over validated rows and what the store knows. Nothing here writes: apply
(sync/apply.py) carries a plan out and records each teacher's `row_hash` in the store once Moodle has it.

Memory: a roster plan keeps one small dict entry per teacher of the file (ID number -> first row and
kind), the store's compact `KnownTeachers`, and the actions themselves only while there are few of
them (a re-sync); a first sync of a whole province re-reads the file when its actions are iterated.
A caller that wants only the first actions (a dry run's plan sheet) asks `plan_roster` to keep that many
(`head`) and reads them with `RosterPlan.first_actions`, without a second pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from creditbridge import CreditbridgeError
from creditbridge.programmes import ProgrammeFacts
from creditbridge.readers.exports import read_roster
from creditbridge.settings.model import InputLimits
from creditbridge.store.models.core import CatalogCourse, SchoolTopic, Teacher
from creditbridge.sync.plan_kernel import plan_roster as plan_roster
from creditbridge.sync.records import (
    ActionKind,
    CatalogRow,
    RowError,
    TeacherState,
    TopicRow,
)
from creditbridge.sync.roster_plan import KnownTeachers as KnownTeachers
from creditbridge.sync.roster_plan import RosterPlan as RosterPlan
from creditbridge.sync.roster_plan import TeacherAction as TeacherAction
from creditbridge.sync.roster_plan import absent_kind as absent_kind
from creditbridge.sync.roster_plan import classify as classify
from creditbridge.sync.roster_plan import hold_suspensions as hold_suspensions
from creditbridge.sync.roster_plan import plan_roster_reference as plan_roster_reference
from creditbridge.sync.roster_plan import transfer_levels as transfer_levels
from creditbridge.sync.validation import ValidatedRoster

log = logging.getLogger(__name__)


# --- what the store knows -------------------------------------------------------------------------------------


def load_known_teachers(connectable: Any, programme: str) -> KnownTeachers:
    """Stream the programme's Teacher rows into a KnownTeachers (Engine, Connection or Session).

    I/O, kept apart from the pure planning below. The database builds each teacher's compact string
    (hash, status letter, school, county, city) itself, so a million rows arrive as a million 2-tuples
    that go into the dict in C.
    """
    sep = literal(KnownTeachers._SEP)
    compact = (func.coalesce(Teacher.row_hash, literal(" " * 32))
               + case((Teacher.status == "active", literal("a")), else_=literal("s"))
               + Teacher.school_code + sep + Teacher.county + sep + Teacher.city)
    stmt = select(Teacher.id_number, compact).where(Teacher.programme == programme)
    known = KnownTeachers()
    raw = known._raw

    def fill(conn: Any) -> None:
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(stmt)
        for part in result.partitions():
            raw.update(map(tuple, part))

    if isinstance(connectable, Session):
        fill(connectable.connection())
    elif hasattr(connectable, "connect"):
        with connectable.connect() as conn:
            fill(conn)
    else:
        fill(connectable)
    known.active_count = sum(1 for v in raw.values() if v[32] == "a")
    return known


def load_known_courses(session: Any, programme: str) -> dict[str, str]:
    """Catalog code -> row_hash of the programme's stored courses."""
    stmt = select(CatalogCourse.code, CatalogCourse.row_hash).where(CatalogCourse.programme == programme)
    rows = session.execute(stmt)
    return {code: h or "" for code, h in rows}


def load_known_topics(session: Any, programme: str) -> dict[str, set[str]]:
    """School code -> the topics the store has for it."""
    out: dict[str, set[str]] = {}
    for school, topic in session.execute(
            select(SchoolTopic.school_code, SchoolTopic.topic).where(SchoolTopic.programme == programme)):
        out.setdefault(school, set()).add(topic)
    return out


# --- roster plan -----------------------------------------------------------------------------------------------


def plan_roster_file(
    path: str | Path,
    known: Mapping[str, TeacherState],
    *,
    programme: str,
    header_map: Mapping[str, str] | None = None,
    subjects: Mapping[str, Mapping[str, str]] | None = None,
    delta: bool = False,
    force: bool = False,
    suspend_threshold: float = 0.10,
    limits: InputLimits | None = None,
    head: int = 0,
    list_only: bool = False,
) -> RosterPlan:
    """Read, validate and plan a roster file (the entry point apply uses). head, list_only: see plan_roster."""
    limits = limits or InputLimits()
    table = read_roster(path, header_map, limits)
    return plan_roster(ValidatedRoster(table, subjects), known, programme=programme, delta=delta, force=force,
                       suspend_threshold=suspend_threshold, id_column=table.column("id_number"),
                       max_errors=limits.max_errors, head=head, list_only=list_only)


# --- catalog plan ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseAction:
    kind: ActionKind  # create | update | unchanged
    course: CatalogRow
    previous_hash: str | None


@dataclass
class CatalogPlan:
    """courses: every valid course in file order; actions: the create/update ones; counts by kind;
    missing: codes the store has that the file no longer lists (reported, never deleted)."""

    courses: list[CatalogRow]
    actions: list[CourseAction]
    counts: dict[str, int]
    errors: list[RowError]
    missing: list[str]

    def as_json(self) -> dict[str, Any]:
        return {**self.counts, "missing": self.missing, "errors": [e.as_json() for e in self.errors]}


def classify_course(course: CatalogRow, previous_hash: str | None) -> ActionKind:
    if previous_hash is None:
        return ActionKind.CREATE
    return ActionKind.UNCHANGED if previous_hash == course.row_hash else ActionKind.UPDATE


def plan_catalog(
    courses: Iterable[CatalogRow], known: Mapping[str, str], errors: Iterable[RowError] = ()
) -> CatalogPlan:
    """known: stored code -> row_hash."""
    listed = list(courses)
    counts = {"create": 0, "update": 0, "unchanged": 0}
    actions: list[CourseAction] = []
    for c in listed:
        prev = known.get(c.code)
        kind = classify_course(c, prev)
        counts[kind.value] += 1
        if kind is not ActionKind.UNCHANGED:
            actions.append(CourseAction(kind, c, prev))
    codes = {c.code for c in listed}
    missing = sorted(k for k in known if k not in codes)
    return CatalogPlan(listed, actions, counts, sorted(errors, key=lambda e: e.row), missing)


# --- topics plan -----------------------------------------------------------------------------------------------


class TopicsRefused(CreditbridgeError):
    """A topics file breaks the programme's rules; nothing of it is applied. `.errors` name the schools."""

    def __init__(self, errors: list[RowError], schools: list[str]) -> None:
        self.errors = errors
        self.schools = schools
        shown = "; ".join(e.reason for e in errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        super().__init__(f"topics file refused: {shown}")


@dataclass
class TopicsPlan:
    """schools: school code -> its chosen topics (sorted); added/removed: (school, topic) pairs versus
    the store; schools the file does not list are left alone."""

    schools: dict[str, tuple[str, ...]]
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    unchanged: int
    errors: list[RowError]
    limits: ProgrammeFacts

    def as_json(self) -> dict[str, Any]:
        return {"schools": len(self.schools), "added": len(self.added), "removed": len(self.removed),
                "unchanged": self.unchanged, "errors": [e.as_json() for e in self.errors]}


def check_school_topics(
    school: str, topics: Iterable[str], limits: ProgrammeFacts
) -> str | None:
    """Why a school's choice breaks the rules (free topics such as `subject` do not count), or None."""
    chosen = {t for t in topics if t not in limits.free_topics}
    missing = [t for t in limits.mandatory_topics if t not in chosen]
    if missing:
        return f"school {school} must choose the mandatory topic(s) {', '.join(missing)}"
    if limits.max_topics is not None and len(chosen) > limits.max_topics:
        return (f"school {school} chose {len(chosen)} topics; the programme allows at most {limits.max_topics} "
                f"({', '.join(sorted(chosen))})")
    return None


def plan_topics(
    rows: Iterable[TopicRow],
    known: Mapping[str, Iterable[str]],
    *,
    limits: ProgrammeFacts,
    known_topics: Iterable[str] | None = None,
    errors: Iterable[RowError] = (),
    column: str = "学校代码",
    topic_column: str = "专题",
) -> TopicsPlan:
    """Plan a topics file. Raises TopicsRefused (naming every offending school, at its first row) when a
    school has more than the maximum or lacks a mandatory topic. A topic the catalog does not have
    (when `known_topics` is given) is a row error and that row is skipped."""
    row_errors = list(errors)
    catalog_topics = set(known_topics) if known_topics is not None else None
    chosen: dict[str, list[str]] = {}
    first_row: dict[str, int] = {}
    for r in rows:
        if catalog_topics is not None and r.topic not in catalog_topics and r.topic not in limits.free_topics:
            row_errors.append(RowError(row=r.row, column=topic_column,
                                       reason=f"topic {r.topic!r} is not in the catalog"))
            continue
        first_row.setdefault(r.school_code, r.row)
        if r.topic not in chosen.setdefault(r.school_code, []):
            chosen[r.school_code].append(r.topic)
    refusals: list[RowError] = []
    for school, topics in chosen.items():
        problem = check_school_topics(school, topics, limits)
        if problem is not None:
            refusals.append(RowError(row=first_row[school], column=column, reason=problem))
    if refusals:
        raise TopicsRefused(refusals, [school for school in chosen if
                                       check_school_topics(school, chosen[school], limits)])
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    unchanged = 0
    for school, topics in chosen.items():
        have = set(known.get(school, ()))
        want = set(topics)
        added.extend((school, t) for t in sorted(want - have))
        removed.extend((school, t) for t in sorted(have - want))
        unchanged += want == have
    return TopicsPlan({s: tuple(sorted(t)) for s, t in chosen.items()}, added, removed, unchanged,
                      sorted(row_errors, key=lambda e: e.row), limits)
