"""Inputs of a standalone evaluation (no LMS, no store): roster, catalog, topics, assignments and
learning-record files, read into the evaluator's in-memory types. Bad rows are errors naming the file,
row and column: an audit must not silently drop a teacher or a record."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from creditbridge import CreditbridgeError
from creditbridge.input_limits import bounded_lines
from creditbridge.mappings.evaluate import Course, Person, Record
from creditbridge.readers.exports import read_catalog, read_roster, read_topics
from creditbridge.records.learning_record import LearningRecord
from creditbridge.settings.model import InputLimits


class InputError(CreditbridgeError):
    pass


@dataclass
class StandaloneInputs:
    people: list[Person]
    catalog: dict[str, Course]
    topics: dict[str, list[str]]
    assignments: dict[str, set[str]]
    records: list[Record]


def _table_rows(kind: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a roster/catalog/topics file as {field: text}. The one place that knows how the files are
    read: the export readers sync uses as well (XLSX/CSV in UTF-8, BOM or GB18030, YAML catalogs, Chinese
    headers)."""

    reader = {"roster": read_roster, "catalog": read_catalog, "topics": read_topics}[kind]
    return list(reader(path).dicts())


def read_inputs(programme: str, roster: Path, catalog: Path, topics: Path | None, records: Path,
                assignments: Path | None = None) -> StandaloneInputs:
    people: list[Person] = []
    for _row, d in _table_rows("roster", roster):
        people.append(Person.of(d["id_number"].strip().upper(), d["school_code"].strip(), d.get("stage"),
                                d.get("subject"), d.get("city")))
    courses: dict[str, Course] = {}
    for row, d in _table_rows("catalog", catalog):
        try:
            hours = float(d.get("hours") or 0)
        except ValueError as e:
            raise InputError(f"{catalog.name} row {row}, column hours: not a number ({d.get('hours')!r})") from e
        courses[d["code"].strip()] = Course.of(d["code"].strip(), d["kind"].strip(), d.get("topic"), d.get("mode"),
                                               hours, d.get("stage"), d.get("subject"), d.get("city"))
    chosen: dict[str, list[str]] = {}
    if topics is not None:
        for _row, d in _table_rows("topics", topics):
            chosen.setdefault(d["school"].strip(), []).append(d["topic"].strip())
    assigned: dict[str, set[str]] = {}
    if assignments is not None:
        assigned = read_assignments(assignments)
    return StandaloneInputs(people, courses, chosen, assigned, read_records(records, programme))


def read_assignments(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"teacher", "course"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path.name}: header row lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            out.setdefault((row["teacher"] or "").strip().upper(), set()).add((row["course"] or "").strip())
    return out


def read_records(path: Path, programme: str) -> list[Record]:
    """Learning records as JSON lines (DESIGN.md). A revocation withdraws the earlier activity completions
    of the same teacher, course and activity, as webhook intake does in the store."""
    raw: list[LearningRecord] = []
    max_chars = InputLimits().max_line_chars
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in bounded_lines(fh, max_chars):
            if line is None:
                raise InputError(f"{path.name} line {n}: longer than limits.max_line_chars = {max_chars:,} characters")
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
                raw.append(LearningRecord.model_validate(data))
            except json.JSONDecodeError as e:
                raise InputError(f"{path.name} line {n}: not JSON ({e.msg})") from e
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "record"
                raise InputError(f"{path.name} line {n}, field {field}: {err['msg']}") from None
    revocations: dict[tuple[str, str, str | None], list[Any]] = {}
    for r in raw:
        if r.kind == "revocation":
            revocations.setdefault((r.teacher, r.course, r.activity), []).append(r.occurred_at)

    def withdrawn(r: LearningRecord) -> bool:
        times = revocations.get((r.teacher, r.course, r.activity))
        return r.kind == "activity" and times is not None and any(r.occurred_at <= t for t in times)

    return [Record(course=r.course, kind=str(r.kind), passed=r.passed, hours=r.hours, minutes=r.minutes,
                   score=r.score, activity=r.activity, occurred_at=r.occurred_at, teacher=r.teacher)
            for r in raw if r.programme == programme and r.kind != "revocation" and not withdrawn(r)]
