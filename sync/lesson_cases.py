"""Which exemplary lesson cases each teacher watches and reviews: a pure, deterministic assignment.

The programme pushes a fixed number of distinct cases to every teacher from the pool matching their
stage and subject (and city, when the programme's pool is city-level), never a lesson the teacher
recorded. Assignments already made are never reshuffled: a teacher short of cases is topped up from
the least-assigned ones, ties broken by a hash of teacher and course, so the result does not depend
on the order rows arrived in and the load stays within one of even whenever the pool allows it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LessonCase:
    code: str
    stage: str | None
    subject: str | None
    city: str | None = None
    recorded_by: str | None = None  # ID number of the teacher who recorded the lesson


@dataclass(frozen=True)
class CaseTaker:
    """The facts of a teacher that decide their pool."""

    id_number: str
    stage: str
    subject: str | None
    city: str | None = None


@dataclass
class Assignment:
    """New assignments by teacher, and the teachers whose pool is too small to give them their number."""

    new: dict[str, list[str]] = field(default_factory=dict)
    short: dict[str, int] = field(default_factory=dict)  # teacher -> how many cases are still missing

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.new.values())


def _tiebreak(teacher: str, course: str) -> bytes:
    return hashlib.sha256(f"{teacher}\x1f{course}".encode()).digest()


def pool_key(stage: str | None, subject: str | None, city: str | None, *, by_city: bool) -> tuple[str, ...]:
    return (stage or "", subject or "", (city or "") if by_city else "")


def assign_lesson_cases(
    teachers: Iterable[CaseTaker],
    cases: Iterable[LessonCase],
    existing: Mapping[str, Iterable[str]],
    *,
    per_teacher: int,
    by_city: bool = False,
    load: dict[str, int] | None = None,
) -> Assignment:
    """Top up every teacher to `per_teacher` distinct cases of their pool.

    `existing`: the assignments already made, teacher -> course codes (any teacher, also ones not in
    `teachers`, since they count towards each case's load). Teachers are served in ID-number order,
    so the same inputs always give the same result whatever order they come in.

    `load`: how many teachers hold each case, when the caller counted it (then `existing` needs only
    the teachers being served); it is updated in place, so batches of teachers can follow one another.
    """
    pools: dict[tuple[str, ...], list[LessonCase]] = defaultdict(list)
    for case in cases:
        pools[pool_key(case.stage, case.subject, case.city, by_city=by_city)].append(case)
    counted = load is not None
    load = load if load is not None else {}
    held: dict[str, set[str]] = {}
    for teacher, courses in existing.items():
        held[teacher] = set(courses)
        if not counted:
            for course in held[teacher]:
                load[course] = load.get(course, 0) + 1
    result = Assignment()
    for t in sorted({t.id_number: t for t in teachers}.values(), key=lambda t: t.id_number):
        mine = held.get(t.id_number, set())
        pool = pools.get(pool_key(t.stage, t.subject, t.city, by_city=by_city), [])
        # Cases the teacher already holds count towards the number even if the pool changed since.
        missing = per_teacher - len(mine)
        if missing <= 0:
            continue
        eligible = [c.code for c in pool if c.code not in mine and c.recorded_by != t.id_number]
        eligible.sort(key=lambda code: (load.get(code, 0), _tiebreak(t.id_number, code)))
        picked = eligible[:missing]
        for code in picked:
            load[code] = load.get(code, 0) + 1
        if picked:
            result.new[t.id_number] = picked
            held[t.id_number] = mine | set(picked)
        if len(picked) < missing:
            result.short[t.id_number] = missing - len(picked)
    return result
