"""Multi-year cycles: a teacher's stored yearly results added up over the cycle their programmes declare.

Each programme file is one year; the yearly files of one cycle declare the same `cycle.id` (docs/rules.md,
"Multi-year cycles"). The evaluator stays per year: this module reads what it stored (credit_result, role
teacher) and adds it up. The pure part (cycle_id, cycle_problems, cycle_status) needs no store; the store
part (find_cycle, iter_cycle_statuses) only reads, in batches of teachers, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select

from creditbridge import CreditbridgeError
from creditbridge.mappings.evaluate import EPS
from creditbridge.mappings.explain import render
from creditbridge.programmes import Problem, Programme, builtin_rule_path, load_programme
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow
from creditbridge.store.models.credits import CreditResult


class CycleError(CreditbridgeError):
    pass


# ----------------------------------------------------------------------------------------------- pure part


def cycle_id(prog: Programme) -> str | None:
    """The cycle's identity: `cycle.id` when the file sets it, else derived from the programme id without
    its trailing year, the first and the last year of the cycle (jx-2018 and jx-2019 → jx-2018-2022).
    None when the programme declares no cycle."""
    c = prog.cycle
    if c is None:
        return None
    if c.id:
        return c.id
    suffix = f"-{prog.year}"
    stem = prog.id[: -len(suffix)] if prog.id.endswith(suffix) and len(prog.id) > len(suffix) else prog.id
    return f"{stem}-{c.start_year}-{c.start_year + c.years - 1}"


def cycle_problems(prog: Programme, line: int | None = None) -> list[Problem]:
    """What is wrong between a programme and its cycle that the schema alone cannot see: a programme year
    outside [start_year, start_year + years - 1]. `line` is the line of `year` in the file, when known."""
    c = prog.cycle
    if c is None:
        return []
    last = c.start_year + c.years - 1
    if c.start_year <= prog.year <= last:
        return []
    return [Problem("year", f"{prog.year} is outside cycle {cycle_id(prog)} ({c.start_year}–{last}): "
                            "set cycle.start_year and cycle.years to the cycle this year belongs to", line)]


@dataclass(frozen=True)
class CycleSpec:
    """A cycle's settings (the same in every yearly file) and the yearly programmes found for it."""

    id: str
    start_year: int
    years: int
    floor_hours: float | None = None
    ceiling_hours: float | None = None
    must_cover_topics: tuple[str, ...] = ()
    counts: str = "passed"
    programmes: tuple[tuple[str, int], ...] = ()  # (programme id, year), by year

    @property
    def last_year(self) -> int:
        return self.start_year + self.years - 1

    @classmethod
    def of(cls, prog: Programme, programmes: Iterable[tuple[str, int]] = ()) -> CycleSpec:
        c = prog.cycle
        if c is None:
            raise CycleError(f"programme {prog.id} declares no cycle")
        return cls(id=cycle_id(prog) or "", start_year=c.start_year, years=c.years, floor_hours=c.floor_hours,
                   ceiling_hours=c.ceiling_hours, must_cover_topics=tuple(c.must_cover_topics), counts=c.counts,
                   programmes=tuple(sorted(programmes, key=lambda p: (p[1], p[0]))))

    def settings(self) -> tuple[Any, ...]:
        """What every yearly file of the cycle must agree on."""
        return (self.start_year, self.years, self.floor_hours, self.ceiling_hours, self.must_cover_topics,
                self.counts)


@dataclass(frozen=True)
class YearResult:
    """One stored yearly result of a teacher."""

    programme: str
    year: int
    hours: float
    passed: bool


def _r(x: float) -> float:
    return round(x + 0.0, 2)


@dataclass
class CycleStatus:
    teacher: str
    cycle: str
    start_year: int
    last_year: int
    years: list[dict[str, Any]]  # per yearly result: year, programme, hours, passed, counted
    hours: float  # counted hours of every year, before the ceiling
    cycle_hours: float  # after the ceiling
    floor_hours: float | None
    ceiling_hours: float | None
    floor_met: bool | None  # None: the cycle has no floor
    short_hours: float
    years_remaining: list[int]
    topics_covered: list[str]
    topics_missing: list[str]
    complete: bool  # floor met (or none) and every topic covered
    reasons: list[str] = field(default_factory=list)
    reasons_zh: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "cycle": self.cycle, "start_year": self.start_year,
                "last_year": self.last_year, "years": self.years, "hours": self.hours,
                "cycle_hours": self.cycle_hours, "floor_hours": self.floor_hours, "ceiling_hours": self.ceiling_hours,
                "floor_met": self.floor_met, "short_hours": self.short_hours, "years_remaining": self.years_remaining,
                "topics_covered": self.topics_covered, "topics_missing": self.topics_missing,
                "complete": self.complete, "reasons": self.reasons, "reasons_zh": self.reasons_zh}


def cycle_status(spec: CycleSpec, teacher: str, results: Iterable[YearResult], covered_topics: Iterable[str],
                 as_of_year: int) -> CycleStatus:
    """One teacher's cycle from their yearly results and the topics their passed records cover.

    A year's hours count when the year passed (or always, with `counts: any`); hours beyond the cycle's
    ceiling do not count; the floor is met at exactly `floor_hours`; the cycle years after `as_of_year`
    are the years still to come."""
    notes: list[tuple[str, dict[str, Any]]] = []
    years: list[dict[str, Any]] = []
    total = 0.0
    for r in sorted(results, key=lambda r: (r.year, r.programme)):
        if not spec.start_year <= r.year <= spec.last_year:
            raise ValueError(f"{r.programme} ({r.year}) is outside cycle {spec.id}")
        counts = r.passed or spec.counts == "any"
        counted = float(r.hours) if counts else 0.0
        total += counted
        years.append({"year": r.year, "programme": r.programme, "hours": _r(float(r.hours)), "passed": r.passed,
                      "counted": _r(counted)})
        if not counts and r.hours > 0:
            notes.append(("cycle_year_not_counted", {"year": r.year, "programme": r.programme, "hours": r.hours}))
    cycle_hours = total
    if spec.ceiling_hours is not None and total > spec.ceiling_hours + EPS:
        cycle_hours = spec.ceiling_hours
        notes.append(("cycle_above_ceiling", {"cycle": spec.id, "value": total, "ceiling": spec.ceiling_hours,
                                              "excess": total - spec.ceiling_hours}))
    remaining = [y for y in range(spec.start_year, spec.last_year + 1) if y > as_of_year]
    floor_met: bool | None = None
    short = 0.0
    if spec.floor_hours is not None:
        floor_met = cycle_hours + EPS >= spec.floor_hours
        if not floor_met:
            short = spec.floor_hours - cycle_hours
            notes.append(("cycle_below_floor", {"cycle": spec.id, "value": cycle_hours, "floor": spec.floor_hours,
                                                "short": short, "remaining": len(remaining)}))
    have = set(covered_topics)
    covered = [t for t in spec.must_cover_topics if t in have]
    missing = [t for t in spec.must_cover_topics if t not in have]
    if missing:
        notes.append(("cycle_topics_missing", {"cycle": spec.id, "topics": missing}))
    rendered = [render(k, f) for k, f in notes]
    return CycleStatus(teacher=teacher, cycle=spec.id, start_year=spec.start_year, last_year=spec.last_year,
                       years=years, hours=_r(total), cycle_hours=_r(cycle_hours), floor_hours=spec.floor_hours,
                       ceiling_hours=spec.ceiling_hours, floor_met=floor_met, short_hours=_r(short),
                       years_remaining=remaining, topics_covered=covered, topics_missing=missing,
                       complete=floor_met is not False and not missing,
                       reasons=[en for en, _ in rendered], reasons_zh=[zh for _, zh in rendered])


def current_year(prog: Programme) -> int:
    """This year in the programme's time zone: the default point the cycle is seen from."""
    return datetime.now(ZoneInfo(prog.timezone)).year


# ----------------------------------------------------------------------------------------------- store part

CR = CreditResult.__table__
LR = LearningRecordRow.__table__
CC = CatalogCourse.__table__


@dataclass
class FoundCycle:
    spec: CycleSpec
    reference: Programme  # the programme the cycle was asked for
    warnings: list[str] = field(default_factory=list)  # store programmes left out, results of other rule files


def _store_programmes(store: Store, teachers: Sequence[str] | None) -> dict[str, set[str]]:
    """Programme id → rule hashes of its stored teacher results (of `teachers` only, when given)."""
    q = select(CR.c.programme, CR.c.rule_hash).where(CR.c.role == "teacher").distinct()
    if teachers is not None:
        q = q.where(CR.c.teacher.in_(list(teachers)))
    out: dict[str, set[str]] = {}
    with store.engine.connect() as conn:
        for code, h in conn.execute(q):
            out.setdefault(code, set()).add(h)
    return out


def find_cycle(store: Store, programme: str | Path, rule_files: Sequence[str | Path] = (), *,
               teachers: Sequence[str] | None = None) -> FoundCycle:
    """The cycle of `programme` (an id or a rule-file path) and every programme of it: the programme itself
    and each programme with stored results whose rule file (one of `rule_files`, else the shipped one)
    declares the same cycle id. Every yearly file must agree on the cycle's settings and lie inside it.
    `teachers` limits the store programmes looked at to those where these teachers have results."""
    given: dict[str, tuple[Programme, str]] = {}
    for f in rule_files:
        p = load_programme(f)
        if p.id in given and given[p.id][0].hash != p.hash:
            raise CycleError(f"two rule files for programme {p.id}: {given[p.id][1]} and {f}")
        given[p.id] = (p, str(f))
    # an id given with --rules names that file, not a shipped one
    ref = given[str(programme)][0] if str(programme) in given else load_programme(programme)
    if ref.cycle is None:
        raise CycleError(f"programme {ref.id} declares no cycle (see docs/rules.md, Multi-year cycles)")
    if ref.id in given and given[ref.id][0].hash != ref.hash:
        raise CycleError(f"two rule files for programme {ref.id}: {programme} and {given[ref.id][1]}")
    # the reference wins over a shipped file of the same id, as `--rules` does
    given.setdefault(ref.id, (ref, str(programme)))
    stored = _store_programmes(store, teachers)
    candidates = dict(given)
    warnings: list[str] = []
    for code in sorted(stored):
        if code in candidates:
            continue
        path = builtin_rule_path(code)
        if path is None:
            warnings.append(f"programme {code} has stored results but no rule file: left out (pass its file with "
                            "--rules if it belongs to this cycle)")
            continue
        candidates[code] = (load_programme(path), str(path))
    spec = CycleSpec.of(ref)
    members: list[tuple[str, int]] = []
    for p, source in (candidates[c] for c in sorted(candidates)):
        if p.cycle is None or cycle_id(p) != spec.id:
            continue
        problems = cycle_problems(p)
        if problems:
            raise CycleError(f"{source}: {problems[0]}")
        theirs = CycleSpec.of(p)
        if theirs.settings() != spec.settings():
            names = ("start_year", "years", "floor_hours", "ceiling_hours", "must_cover_topics", "counts")
            diff = next(n for n, a, b in zip(names, theirs.settings(), spec.settings(), strict=True) if a != b)
            raise CycleError(f"{source}: cycle {spec.id}: cycle.{diff} differs from {ref.id}'s "
                             "(every yearly file of a cycle must declare the same cycle)")
        members.append((p.id, p.year))
        other = stored.get(p.id, set()) - {p.hash}
        if other:
            warnings.append(f"programme {p.id}: some stored results were evaluated with another rule file "
                            f"(run `creditbridge credits evaluate --programme {p.id}`)")
    return FoundCycle(CycleSpec.of(ref, members), ref, warnings)


def iter_cycle_statuses(store: Store, spec: CycleSpec, as_of_year: int, *, teachers: Sequence[str] | None = None,
                        batch: int = 2000) -> Generator[CycleStatus]:
    """Every teacher with a stored teacher result in a programme of the cycle (or only `teachers`), in ID-number
    order, one at a time. Results are read through a server-side cursor; the covered topics are read per
    batch of teachers (by key range), so memory holds one batch, however large the roster."""
    codes = [c for c, _ in spec.programmes]
    if not codes:
        return
    year_of = dict(spec.programmes)
    q = select(CR.c.teacher, CR.c.programme, CR.c.hours, CR.c.passed).where(
        CR.c.programme.in_(codes), CR.c.role == "teacher")
    if teachers is not None:
        q = q.where(CR.c.teacher.in_(list(teachers)))
    topics_q = None
    if spec.must_cover_topics:
        # a topic is covered by a passed, non-withdrawn record of a catalog course with that topic
        topics_q = select(LR.c.teacher, CC.c.topic).distinct().select_from(
            LR.join(CC, (CC.c.programme == LR.c.programme) & (CC.c.code == LR.c.course))).where(
            # the batch's key range, not an IN list of its teachers: the (programme, teacher) index serves a
            # range whatever the planner's statistics say, and both ends come from the same ORDER BY
            LR.c.programme.in_(codes), LR.c.teacher >= bindparam("lo"), LR.c.teacher <= bindparam("hi"),
            LR.c.passed.is_(True), LR.c.withdrawn_by.is_(None), LR.c.kind != "revocation",
            CC.c.topic.in_(list(spec.must_cover_topics)))
    with store.engine.connect() as conn, store.engine.connect() as side:
        rows = conn.execution_options(stream_results=True, yield_per=batch).execute(
            q.order_by(CR.c.teacher, CR.c.programme))
        pending: list[tuple[str, list[YearResult]]] = []

        def flush() -> Iterator[CycleStatus]:
            covered: dict[str, set[str]] = {}
            if topics_q is not None:
                for t, topic in side.execute(topics_q, {"lo": pending[0][0], "hi": pending[-1][0]}):
                    covered.setdefault(t, set()).add(topic)  # teachers of the range without a result: never read
            for t, results in pending:
                yield cycle_status(spec, t, results, covered.get(t, ()), as_of_year)
            pending.clear()

        for teacher, group in groupby(rows, key=lambda r: r.teacher):
            pending.append((teacher, [YearResult(r.programme, year_of[r.programme], float(r.hours), bool(r.passed))
                                      for r in group]))
            if len(pending) >= batch:
                yield from flush()
        if pending:
            yield from flush()
