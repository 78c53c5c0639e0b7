"""Which learning records count, on named records, one record and one component at a time.

The definition of what a record gives each component of a role: `RolePlan.evaluate` (evaluate.py) is the
fast kernel, on positional tuples with each course's components precompiled, for a province's million
teachers; tests/mappings/test_evaluate_reference.py checks on generated records that both give the same
Result. From the tallies on, both use `RolePlan.finish` (values, caps, points, groups, totals, credits):
that part already reads the programme's components by name and runs once per teacher, not per record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from creditbridge.mappings.evaluate import (
    EPS,
    Course,
    Facts,
    Person,
    Record,
    Result,
    Rules,
    SchoolStats,
    fits_teacher,
)
from creditbridge.programmes.schema import Component, RoleName

# the short kind of a reason in the key that keeps one reason per course (the kernel's keys)
_NOTE_KEYS = {"not_assigned": "a", "outside_topics": "t", "not_for_teacher": "m"}


@dataclass
class Tally:
    """What counted for one component: the best hours of each course, the minutes, the best score of each
    (course, activity), the items (course, activity) and the courses passed."""

    hours: dict[str, float] = field(default_factory=dict)
    minutes: float = 0.0
    scores: dict[tuple[str, str | None], float] = field(default_factory=dict)
    items: set[tuple[str, str | None]] = field(default_factory=set)
    passed_codes: set[str] = field(default_factory=set)


def item_facts(comp: Component, code: str) -> Facts:
    en, zh = comp.item
    return (("code", code), ("item_en", en), ("item_zh", zh))


def why_not_for(rules: Rules, comp: Component, course: Course | None, rec: Record, *, person: Person | None,
                assigned: frozenset[str] | set[str], topics: frozenset[str]) -> tuple[str, Facts] | None:
    """Why a record inside the programme window does not count for a component it may feed (a reason key and
    its facts), or None when it may."""
    if comp.window is not None:
        side = rules.window_side(rec.occurred_at, rules.bounds(comp.window))
        if side:
            return "outside_window", (("code", rec.course), ("side", side), ("start", comp.window.start),
                                      ("end", comp.window.end))
    if comp.assigned_only and rec.course not in assigned:
        return "not_assigned", item_facts(comp, rec.course)
    if comp.school_topics and course is not None and course.topic not in topics:
        return "outside_topics", (*item_facts(comp, rec.course), ("topic", course.topic))
    if comp.match_teacher and course is not None:
        misfit = fits_teacher(comp, course, person)
        if misfit:
            return "not_for_teacher", (*item_facts(comp, rec.course), ("field", misfit))
    return None


def achieved(comp: Component, rec: Record) -> bool:
    """Whether a record is a success the component counts: any record when it counts any, a passed one, or
    (when the record does not say) a score at least the component's minimum score."""
    if comp.counts == "any" or rec.passed:
        return True
    return (rec.passed is None and comp.min_score is not None and rec.score is not None
            and float(rec.score) + EPS >= comp.min_score)


def add_to(tally: Tally, comp: Component, course: Course | None, rec: Record) -> None:
    """Count an achieved record for a component, by what the component measures."""
    if comp.measure == "hours":
        if rec.kind == "time":
            return  # viewing time is not a completed course
        if comp.hours_each is not None:
            h = comp.hours_each
        elif rec.hours is not None:
            h = float(rec.hours)
        else:
            h = course.hours if course is not None else 0.0
        if h > tally.hours.get(rec.course, -1.0):  # each course once, its best record
            tally.hours[rec.course] = h
    elif comp.measure == "minutes":
        if rec.minutes is not None:
            tally.minutes += float(rec.minutes)
    elif comp.measure in ("score", "share_of_teachers"):
        s = float(rec.score) if rec.score is not None else 0.0
        key = (rec.course, rec.activity)
        if s > tally.scores.get(key, -math.inf):  # each activity once, its best score
            tally.scores[key] = s
    tally.items.add((rec.course, rec.activity))
    tally.passed_codes.add(rec.course)


def evaluate_role_reference(rules: Rules, role_name: str, key: str, records: Iterable[Record], *,
                            person: Person | None = None, assigned: frozenset[str] | set[str] = frozenset(),
                            topics: frozenset[str] = frozenset(), school: SchoolStats | None = None) -> Result:
    """One person's (or one school's) result for one role, as `RolePlan.evaluate` gives it.

    Each record, unless it is a revocation or of a course the role does not count: outside the programme
    window it counts for nothing (one reason); else, for each component its course may feed (in the
    programme's order), a reason why it does not count there (`why_not_for`), or nothing when it is no success
    (`achieved`), or it is added to that component's tally (`add_to`). A later component's reason for the
    same course replaces an earlier one's.
    """
    feeds = rules.matches[role_name]
    components = rules.programme.roles[cast(RoleName, role_name)].components
    tallies = [Tally() for _ in components]
    notes: dict[tuple[Any, ...], tuple[str, Facts]] = {}
    window = (("start", rules.programme.window.start), ("end", rules.programme.window.end))
    for rec in records:
        if rec.kind == "revocation" or rec.course not in feeds:
            continue
        side = rec.window if rec.window is not None else rules.window_side(rec.occurred_at)
        if side:
            notes[("w", rec.course, side)] = ("outside_window", (("code", rec.course), ("side", side), *window))
            continue
        course = rules.catalog.get(rec.course)
        for i, comp in feeds[rec.course]:
            why = why_not_for(rules, comp, course, rec, person=person, assigned=assigned, topics=topics)
            if why is not None:
                reason, facts = why
                # one reason per course and kind of reason (a component's own window: per component too)
                note: tuple[Any, ...] = (("w", rec.course, dict(facts)["side"], i) if reason == "outside_window"
                                         else (_NOTE_KEYS[reason], rec.course))
                notes[note] = why
            elif achieved(comp, rec):
                add_to(tallies[i], comp, course, rec)
    return rules.plan(role_name).finish(
        key, person, assigned, topics, school, [t.hours for t in tallies], [t.minutes for t in tallies],
        [t.scores for t in tallies], [t.items for t in tallies], [t.passed_codes for t in tallies], notes or None)
