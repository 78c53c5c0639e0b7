"""Shared builders for the mappings tests: catalogs, people and records in memory."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import Any

from fixture_paths import fixture

from creditbridge.mappings.evaluate import Course, Person, Record, Result, Rules, as_tuple, evaluate_all
from creditbridge.programmes import load_programme

SAMPLES = fixture("samples")
IN_WINDOW = datetime(2022, 9, 1, 2, 0, tzinfo=UTC)
T1 = "370102198602110011"
T2 = "370102198703120024"
SCHOOL = "370102001"


def sample_catalog(programme: str) -> dict[str, Course]:
    with (SAMPLES / programme / "catalog.csv").open(encoding="utf-8") as fh:
        return {r["code"]: Course.of(r["code"], r["kind"], r["topic"], r["mode"], r["hours"], r["stage"], r["subject"],
                                     r["city"]) for r in csv.DictReader(fh)}


def rec(course: str, passed: bool | None = True, *, at: datetime = IN_WINDOW, teacher: str = T1, **kw: Any) -> Record:
    return Record(course=course, passed=passed, occurred_at=at, teacher=teacher, **kw)


def teacher_result(programme: str, records: list[Record], *, assigned: set[str] | None = None,
                   topics: list[str] | None = None, person: Person | None = None,
                   catalog: dict[str, Course] | None = None) -> Result:
    prog = load_programme(programme)
    person = person or Person.of(T1, SCHOOL, "初中", "数学", "济南市")
    results = evaluate_all(prog, catalog=catalog if catalog is not None else sample_catalog(programme),
                           people=[person], records=records, school_topics={SCHOOL: topics or []},
                           assignments={person.key: assigned or set()})
    return next(r for r in results if r.role == "teacher")


def plan_result(programme: str, role: str, records: list[Record], **kw: Any) -> Result:
    prog = load_programme(programme)
    rules = Rules(prog, sample_catalog(programme))
    return rules.plan(role).evaluate(T1, [as_tuple(r) for r in records], **kw)
