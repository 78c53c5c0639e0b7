"""The evaluator: pure functions of a programme's rules and in-memory inputs (no store, no I/O).

Per teacher (and per workshop host, per school for the school admin) it computes the value of each
component, points, hours, credits, passed or not, and a reason for every shortfall and for every
record that did not count. What counts is only what the rules say: assigned lesson cases, electives
inside the school's topics, records inside the window, each course once, caps applied.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from creditbridge.mappings.explain import render
from creditbridge.programmes.schema import Component, Programme, Role, RoleName, Window
from creditbridge.records.vocabulary import stage_code, subject_code

# Tolerance of every comparison with a minimum or threshold: a float sum equal to it but for rounding error
# (0.1 + 0.2 against 0.3) meets it.
EPS = 1e-9

Facts = tuple[tuple[str, Any], ...]  # a reason's facts as hashable (name, value) pairs


@lru_cache(maxsize=1 << 16)
def _render(key: str, facts: Facts) -> tuple[str, str]:
    # The same few thousand reasons recur across a million teachers: each is worded once.
    return render(key, dict(facts))


def _norm_stage(v: str | None) -> str | None:
    return (stage_code(v) or v.strip()) if v else None


def _norm_subject(stage: str | None, v: str | None) -> str | None:
    if not v:
        return None
    return (subject_code(stage, v) if stage else None) or v.strip()


@dataclass(frozen=True, slots=True)
class Course:
    code: str
    kind: str
    topic: str | None = None
    mode: str = "online"
    hours: float = 0.0
    stage: str | None = None
    subject: str | None = None
    city: str | None = None

    @classmethod
    def of(cls, code: str, kind: str, topic: str | None = None, mode: str | None = "online", hours: Any = 0,
           stage: str | None = None, subject: str | None = None, city: str | None = None) -> Course:
        st = _norm_stage(stage)
        return cls(code, kind, topic or None, mode or "online", float(hours or 0), st, _norm_subject(st, subject),
                   (city or "").strip() or None)


@dataclass(frozen=True, slots=True)
class Person:
    key: str  # ID number
    school: str
    stage: str | None = None
    subject: str | None = None
    city: str | None = None

    @classmethod
    def of(cls, key: str, school: str, stage: str | None = None, subject: str | None = None,
           city: str | None = None) -> Person:
        st = _norm_stage(stage)
        return cls(key, school, st, _norm_subject(st, subject), (city or "").strip() or None)


@dataclass(frozen=True, slots=True)
class Record:
    """A learning record as the evaluator sees it. `window` may carry the record's position against
    the programme window (-1 before, 0 inside, 1 after) when the store computed it already."""

    course: str
    kind: str = "course"
    passed: bool | None = None
    hours: float | None = None
    minutes: float | None = None
    score: float | None = None
    activity: str | None = None
    occurred_at: datetime | None = None
    window: int | None = None
    teacher: str | None = None  # only for evaluate_all, which groups records by teacher


@dataclass
class Result:
    teacher: str  # ID number; the school code for school_admin
    programme: str
    role: str
    year: int
    hours: float
    credits: float
    points: float | None
    passed: bool
    components: dict[str, float]
    reasons: list[str]
    reasons_zh: list[str]
    grade: str | None = None
    school: str | None = None
    input_hash: str | None = None  # the store's fingerprint of the inputs (see fingerprint.py); None: not kept

    def as_json(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "programme": self.programme, "role": self.role, "year": self.year,
                "hours": self.hours, "credits": self.credits, "points": self.points, "passed": self.passed,
                "components": self.components, "reasons": self.reasons, "reasons_zh": self.reasons_zh,
                "grade": self.grade}

    @property
    def result_hash(self) -> str:
        """sha256 of what a registry push carries: it changes iff the pushed result changes."""
        return result_hash(self.role, self.year, self.hours, self.credits, self.points, self.passed)


def result_hash(role: str, year: int, hours: float, credits: float, points: float | None, passed: bool) -> str:
    pushed = f"{role}|{int(year)}|{float(hours):.2f}|{float(credits):.2f}|" \
             f"{'-' if points is None else format(float(points), '.2f')}|{int(bool(passed))}"
    return hashlib.sha256(pushed.encode()).hexdigest()


def _r2(x: float) -> float:
    return round(float(x) + 0.0, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass
class SchoolStats:
    teachers: int = 0
    passed: int = 0
    records: list[Any] = field(default_factory=list)


class Rules:
    """A programme compiled against a catalog: which components each course code feeds, per role."""

    def __init__(self, programme: Programme, catalog: Mapping[str, Course]) -> None:
        self.programme = programme
        self.catalog = dict(catalog)
        self.window_start, self.window_end = self.bounds(programme.window)
        # does any component have a window of its own? then records must carry their time (see chunk_inputs.py)
        self.component_windows = any(c.window is not None for r in programme.roles.values() for c in r.components)
        self.free_topics = frozenset(programme.topics.free)
        self.mandatory_topics = frozenset(programme.topics.mandatory)
        # role -> code -> [(index, component)]
        self.matches: dict[str, dict[str, list[tuple[int, Component]]]] = {}
        # role -> component index -> catalog courses in its selection (for require_all)
        self.selection: dict[str, dict[int, list[Course]]] = {}
        for role_name, role in programme.roles.items():
            by_code: dict[str, list[tuple[int, Component]]] = {}
            sel: dict[int, list[Course]] = {}
            for i, comp in enumerate(role.components):
                if comp.select is None:
                    continue
                chosen = [c for c in self.catalog.values() if self._selects(comp, c)]
                sel[i] = sorted(chosen, key=lambda c: c.code)
                codes = {c.code for c in chosen} | set(comp.select.codes)
                for code in codes:
                    by_code.setdefault(code, []).append((i, comp))
            self.matches[role_name] = by_code
            self.selection[role_name] = sel
        self._plans: dict[str, RolePlan] = {}
        # every code any role counts: the store streams only these records
        self.codes = frozenset(c for m in self.matches.values() for c in m)

    @staticmethod
    def _selects(comp: Component, c: Course) -> bool:
        s = comp.select
        assert s is not None
        return ((not s.codes or c.code in s.codes) and (not s.kinds or c.kind in s.kinds)
                and (not s.topics or (c.topic in s.topics)) and (not s.modes or c.mode in s.modes))

    def plan(self, role_name: str) -> RolePlan:
        p = self._plans.get(role_name)
        if p is None:
            p = self._plans[role_name] = RolePlan(self, role_name)
        return p

    def bounds(self, w: Window) -> tuple[datetime, datetime]:
        """A window's inclusive dates in the programme's time zone as UTC instants, the end exclusive."""
        tz = ZoneInfo(self.programme.timezone)
        return (datetime.combine(w.start, time.min, tz).astimezone(UTC),
                datetime.combine(w.end + timedelta(days=1), time.min, tz).astimezone(UTC))

    def window_side(self, at: datetime | str | None, bounds: tuple[datetime, datetime] | None = None) -> int:
        """-1 before the window (the programme's, or `bounds`), 0 inside (or no time known), 1 after."""
        if at is None:
            return 0
        if isinstance(at, str):  # SQLite's text form of a UTC timestamp
            at = datetime.fromisoformat(at)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # the store keeps UTC
        start, end = bounds if bounds is not None else (self.window_start, self.window_end)
        return -1 if at < start else (1 if at >= end else 0)

    def allowed_topics(self, chosen: Iterable[str]) -> frozenset[str]:
        return frozenset(chosen) | self.mandatory_topics | self.free_topics


# A record as the evaluator's inner loop reads it (the store hands these over without building objects):
# (teacher, course, kind, passed, hours, minutes, score, activity, window, occurred_at); window is -1 before
# the programme window, 0 inside, 1 after, or None to be computed from occurred_at. The teacher comes first
# because the store's rows do: grouping them by teacher then needs no copy of each row.
RecTuple = tuple[str | None, str, str, bool | None, Any, Any, Any, str | None, int | None, datetime | None]

_M_HOURS, _M_MINUTES, _M_SCORE, _M_COUNT, _M_RATE, _M_SHARE = range(6)
_MEASURES = {"hours": _M_HOURS, "minutes": _M_MINUTES, "score": _M_SCORE, "count": _M_COUNT,
             "pass_rate": _M_RATE, "share_of_teachers": _M_SHARE}


def as_tuple(rec: Any) -> RecTuple:
    """Any record-like object (Record, a LearningRecord, a row with those names) as the inner loop's tuple."""
    return (getattr(rec, "teacher", None), rec.course, str(rec.kind), rec.passed, rec.hours, rec.minutes, rec.score,
            rec.activity, getattr(rec, "window", None), getattr(rec, "occurred_at", None))


def fits_teacher(comp: Component, course: Course | None, person: Person | None) -> str | None:
    """The teacher field a course does not match (None when it fits)."""
    if course is None or person is None:
        return None
    for f in comp.match_teacher:
        want = getattr(course, f)
        if want is not None and want != getattr(person, f):
            return f
    return None


def _credits(role: Role, passed: bool, hours_by_mode: dict[str, float]) -> float:
    c = role.credits
    if c is None:
        return 0.0
    if c.fixed is not None:
        return float(c.fixed) if passed else 0.0
    if not passed and c.when_failed == "zero":
        return 0.0
    # Looked up by the delivery mode a course gives (any text); a mode without a ratio takes "any"'s.
    ratio = cast(dict[str, float], c.hours_per_credit)
    default = ratio.get("any", 1.0)
    raw = 0.0
    for mode, h in hours_by_mode.items():
        raw += h / ratio.get(mode, default)
    raw *= c.weight
    raw = round(raw, 6)  # 59.99999999 from float sums must floor to 2 credits' worth, not below
    q = 10 ** c.decimals
    if c.rounding == "floor":
        raw = math.floor(raw * q + EPS) / q
    elif c.rounding == "ceil":
        raw = math.ceil(raw * q - EPS) / q
    elif c.rounding == "half_up":
        raw = math.floor(raw * q + 0.5 + EPS) / q
    if c.maximum is not None:
        raw = min(raw, c.maximum)
    return _r2(raw)


def _points(comp: Component, value: float, count: int) -> float:
    p = comp.points
    assert p is not None
    if p.fixed is not None:
        met = value + EPS >= comp.minimum if comp.minimum is not None else count > 0
        pts = p.fixed if met else 0.0
    elif p.per_item is not None:
        pts = p.per_item * count
    elif p.proportional is not None:
        pts = p.proportional.points * min(value / p.proportional.full_at, 1.0)
    elif p.from_value:
        pts = value
    else:
        pts = next((t.points for t in p.tiers if value + EPS >= t.at_least), 0.0)
    if p.cap is not None:
        pts = min(pts, p.cap)
    return max(pts, 0.0)


def _grade(comp: Component, v: float) -> str:
    g = comp.grade
    assert g is not None
    return "优秀" if v + EPS >= g.excellent_at else ("合格" if v + EPS >= g.pass_at else "不合格")


class RolePlan:
    """One role's rules compiled for speed: per course code, the components it feeds with everything the
    inner loop needs precomputed, so evaluating a teacher touches no schema object per record."""

    def __init__(self, rules: Rules, role_name: str) -> None:
        self.rules = rules
        self.programme = rules.programme
        self.role_name = role_name
        # Callers name roles by text; a name the programme lacks raises KeyError here either way.
        self.role = role = rules.programme.roles[cast(RoleName, role_name)]
        self.comps = role.components
        self.n = len(role.components)
        self.measures = [_MEASURES[c.measure] for c in self.comps]
        # code -> tuple of hits: (index, assigned_only, school_topics, topic, match_teacher, counts_any,
        #                         min_score, hours_each, catalog_hours, measure, own window or None)
        windows = [rules.bounds(c.window) if c.window is not None else None for c in self.comps]
        self.window_facts_of = [(("start", c.window.start), ("end", c.window.end)) if c.window else ()
                                for c in self.comps]
        self.hits: dict[str, tuple[tuple[Any, ...], ...]] = {}
        for code, lst in rules.matches[role_name].items():
            course = rules.catalog.get(code)
            self.hits[code] = tuple(
                (i, c.assigned_only, c.school_topics and course is not None, course.topic if course else None,
                 bool(c.match_teacher) and course is not None, c.counts == "any", c.min_score, c.hours_each,
                 course.hours if course else 0.0, _MEASURES[c.measure], windows[i])
                for i, c in lst)
        # the delivery mode of every code the role counts (credits may convert hours by mode)
        self.code_mode = {code: (rules.catalog[code].mode if code in rules.catalog else "online")
                          for code in rules.matches[role_name]}
        self.require_assigned = {i for i, c in enumerate(self.comps) if c.require_all and c.assigned_only}
        # require_all lists that do not depend on the teacher (no topic or teacher filter): computed once
        self.static_wanted = {i: [c.code for c in rules.selection[role_name].get(i, [])]
                              for i, c in enumerate(self.comps)
                              if c.require_all and not c.assigned_only and not c.school_topics and not c.match_teacher}
        self.comp_codes = [{code for code, lst in rules.matches[role_name].items() if any(j == i for j, _ in lst)}
                           for i in range(self.n)]
        self.window_facts = (("start", self.programme.window.start), ("end", self.programme.window.end))
        # per component, the settings `finish` reads, unpacked once instead of per teacher
        self.fast = [(c, c.name, self.measures[i], c.cap, c.minimum, c.wanted_count,
                      c.measure == "hours" and c.adds_to_total, c.require_all, c.required, c.points is not None,
                      c.grade is not None) for i, c in enumerate(self.comps)]

    def evaluate(self, key: str, records: Iterable[RecTuple], *, person: Person | None = None,
                 assigned: frozenset[str] | set[str] = frozenset(), topics: frozenset[str] = frozenset(),
                 school: SchoolStats | None = None) -> Result:
        rules = self.rules
        hits_of = self.hits
        n = self.n
        hours: list[dict[str, float] | None] = [None] * n
        minutes = [0.0] * n
        scores: list[dict[tuple[str, str | None], float] | None] = [None] * n
        items: list[set[tuple[str, str | None]] | None] = [None] * n
        passed_codes: list[set[str] | None] = [None] * n
        notes: dict[tuple[Any, ...], tuple[str, Facts]] | None = None

        # passed may be 1/0 (SQLite through the DBAPI cursor) as well as True/False; None means "not said"
        for _teacher, course, kind, passed, rec_hours, rec_minutes, score, activity, window, occurred_at in records:
            hits = hits_of.get(course)
            if hits is None or kind == "revocation":
                continue
            if window is None:
                window = rules.window_side(occurred_at)
            if window:
                notes = notes if notes is not None else {}
                notes[("w", course, window)] = ("outside_window", (("code", course), ("side", window),
                                                                   *self.window_facts))
                continue
            for (i, assigned_only, by_topic, topic, by_teacher, any_, min_score, hours_each, cat_hours,
                 measure, own_window) in hits:
                if own_window is not None:
                    side = rules.window_side(occurred_at, own_window)
                    if side:
                        notes = notes if notes is not None else {}
                        notes[("w", course, side, i)] = ("outside_window", (("code", course), ("side", side),
                                                                            *self.window_facts_of[i]))
                        continue
                if assigned_only and course not in assigned:
                    notes = notes if notes is not None else {}
                    notes[("a", course)] = ("not_assigned", self._item(i, course))
                    continue
                if by_topic and topic not in topics:
                    notes = notes if notes is not None else {}
                    notes[("t", course)] = ("outside_topics", (*self._item(i, course), ("topic", topic)))
                    continue
                if by_teacher:
                    misfit = fits_teacher(self.comps[i], rules.catalog[course], person)
                    if misfit:
                        notes = notes if notes is not None else {}
                        notes[("m", course)] = ("not_for_teacher", (*self._item(i, course), ("field", misfit)))
                        continue
                if not (any_ or passed or (passed is None and min_score is not None and score is not None
                                                   and float(score) + EPS >= min_score)):
                    continue
                if measure == _M_HOURS:
                    if kind == "time":
                        continue  # viewing time is not a completed course
                    h = hours_each if hours_each is not None else (
                        float(rec_hours) if rec_hours is not None else cat_hours)
                    d = hours[i]
                    if d is None:
                        d = hours[i] = {}
                    if h > d.get(course, -1.0):
                        d[course] = h
                elif measure == _M_MINUTES:
                    if rec_minutes is not None:
                        minutes[i] += float(rec_minutes)
                elif measure == _M_SCORE or measure == _M_SHARE:
                    sd = scores[i]
                    if sd is None:
                        sd = scores[i] = {}
                    s = float(score) if score is not None else 0.0
                    k = (course, activity)
                    if s > sd.get(k, -math.inf):
                        sd[k] = s
                it = items[i]
                if it is None:
                    it = items[i] = set()
                    passed_codes[i] = set()
                it.add((course, activity))
                passed_codes[i].add(course)
        return self.finish(key, person, assigned, topics, school, hours, minutes, scores, items, passed_codes, notes)

    def _item(self, i: int, code: str) -> Facts:
        en, zh = self.comps[i].item
        return (("code", code), ("item_en", en), ("item_zh", zh))

    def finish(self, key: str, person: Person | None, assigned: frozenset[str] | set[str], topics: frozenset[str],
               school: SchoolStats | None, hours: list[Any], minutes: list[float],
               scores: list[Any], items: list[Any], passed_codes: list[Any],
               notes: dict[tuple[Any, ...], tuple[str, Facts]] | None) -> Result:
        """The result from what counted for each component (lists indexed like the role's components):
        component values with their caps, points, grades, groups, totals, credits, and the reasons, the
        shortfalls' first, then `notes` (why records did not count; key -> (reason key, facts)) in key order.

        `hours`: per component, course -> the best hours (None: none counted); `minutes`: the summed minutes;
        `scores`: (course, activity) -> the best score, or None; `items`: the (course, activity) pairs counted,
        or None; `passed_codes`: the courses counted, or None. `school` gives the pass-rate and share measures
        of the school-admin role. Shared by `evaluate` (the fast kernel) and evaluate_reference.py."""
        role = self.role
        prog = self.programme
        shortfalls: list[tuple[str, Facts]] = []
        failed = False
        values: dict[str, float] = {}
        comp_points: dict[str, float] = {}
        hours_by_mode: dict[str, float] = {}
        grades: list[str] = []
        for i, (comp, name, m, cap, minimum, wanted_n, adds, require_all, required, has_points,
                has_grade) in enumerate(self.fast):
            pc = passed_codes[i] or ()
            n_items = len(items[i]) if items[i] else 0
            if m == _M_HOURS:
                value = sum(hours[i].values()) if hours[i] else 0.0
            elif m == _M_MINUTES:
                value = minutes[i]
            elif m == _M_SCORE:
                value = sum(scores[i].values()) if scores[i] else 0.0
            elif m == _M_COUNT:
                value = float(n_items)
            elif m == _M_RATE:
                nt = school.teachers if school else 0
                value = round((school.passed * 100) / nt, 6) if school and nt else 0.0
            else:
                nt = school.teachers if school else 0
                value = round(max(scores[i].values(), default=0.0) * 100 / nt, 6) if nt and scores[i] else 0.0
            raw = value
            if cap is not None and value > cap:
                value = cap
            if value != int(value):
                value = _r2(value)
            values[name] = value
            if adds and raw > 0:
                scale = value / raw
                code_mode = self.code_mode
                for code, h in hours[i].items():
                    mode = code_mode[code]
                    hours_by_mode[mode] = hours_by_mode.get(mode, 0.0) + h * scale
            if require_all:
                if i in self.require_assigned:
                    codes = self.comp_codes[i]
                    wanted = sorted(c for c in assigned if c in codes)
                elif i in self.static_wanted:
                    wanted = self.static_wanted[i]
                else:
                    wanted = [c.code for c in self.rules.selection[self.role_name].get(i, [])
                              if (not comp.school_topics or c.topic in topics) and not fits_teacher(comp, c, person)]
                missing = [c for c in wanted if c not in pc]
                if missing:
                    en, zh = comp.item
                    shortfalls.extend(("not_passed", (("code", c), ("item_en", en), ("item_zh", zh)))
                                      for c in missing)
                    failed = failed or required
            if wanted_n is not None and len(pc) < wanted_n:
                shortfalls.append(("too_few", (("label_en", comp.en), ("label_zh", comp.zh), ("count", len(pc)),
                                               ("wanted", wanted_n))))
                failed = failed or required
            if minimum is not None and value + EPS < minimum:
                shortfalls.append(("below_minimum", (("label_en", comp.en), ("label_zh", comp.zh),
                                                     ("measure", comp.measure), ("value", value),
                                                     ("minimum", minimum))))
                failed = failed or required
            if has_points:
                comp_points[name] = _r2(_points(comp, value, n_items))
            if has_grade:
                grades.append(_grade(comp, comp_points.get(name, value)))

        group_values: dict[str, float] = {}
        for g in role.groups:
            v = sum(group_values.get(nm, values.get(nm, 0.0)) for nm in g.components)
            if g.cap is not None:
                v = min(v, g.cap)
            group_values[g.name] = _r2(v)
            if g.minimum is not None and v + EPS < g.minimum:
                shortfalls.append(("group_below", (("label_en", g.label_en or g.name.replace("_", " ")),
                                                   ("label_zh", g.label_zh or g.label_en or g.name),
                                                   ("value", v), ("minimum", g.minimum))))
                failed = True

        total = role.total
        total_hours = sum(hours_by_mode.values())
        if total.maximum_hours is not None and total_hours > total.maximum_hours:
            scale = total.maximum_hours / total_hours
            hours_by_mode = {k: v * scale for k, v in hours_by_mode.items()}
            total_hours = total.maximum_hours
        total_hours = _r2(total_hours)
        if total.minimum_hours is not None and total_hours + EPS < total.minimum_hours:
            shortfalls.append(("total_below", (("value", total_hours), ("minimum", total.minimum_hours))))
            failed = True

        points: float | None = None
        if role.scoring == "points":
            points = sum(comp_points.values())
            if total.maximum_points is not None:
                points = min(points, total.maximum_points)
            points = _r2(points)
            if total.pass_mark is not None and points + EPS < total.pass_mark:
                shortfalls.append(("points_below", (("value", points), ("minimum", total.pass_mark))))
                failed = True
        passed = not failed

        if role.register_hours is not None:
            hours_by_mode = {mode: h for mode, h in role.register_hours.items()} if passed else {}
            total_hours = _r2(sum(hours_by_mode.values()))
        credits = _credits(role, passed, hours_by_mode)

        components = {name: comp_points.get(name, v) for name, v in values.items()} if comp_points else values
        if group_values:
            components.update(group_values)
        grade = None
        if role.grade_rule and grades:
            grade = "不合格" if "不合格" in grades else ("优秀" if all(g == "优秀" for g in grades) else "合格")

        texts = [_render(k, f) for k, f in shortfalls]
        if notes:
            texts += [_render(*notes[k]) for k in sorted(notes)]
        return Result(teacher=key, programme=prog.id, role=self.role_name, year=prog.year, hours=total_hours,
                      credits=credits, points=points, passed=passed, components=components,
                      reasons=[t[0] for t in texts], reasons_zh=[t[1] for t in texts], grade=grade,
                      school=person.school if person else key)


def evaluate_role(rules: Rules, role_name: str, key: str, records: Iterable[Any], *, person: Person | None = None,
                  assigned: frozenset[str] | set[str] = frozenset(), topics: frozenset[str] = frozenset(),
                  school: SchoolStats | None = None) -> Result:
    """One person's (or for school_admin, one school's) result for one role, from record objects.
    Withdrawn records must already be left out; revocations are skipped."""
    return rules.plan(role_name).evaluate(key, [as_tuple(r) for r in records], person=person, assigned=assigned,
                                          topics=topics, school=school)


class Evaluation:
    """Evaluates a programme teacher by teacher, fed in any grouping (the store streams chunks),
    keeping what the school-admin role needs: each school's teacher and pass counts and the records
    of its people on the admin tasks. Call `finish()` once every teacher was fed."""

    def __init__(self, rules: Rules, school_topics: Mapping[str, Iterable[str]] | None = None) -> None:
        self.rules = rules
        self.programme = rules.programme
        self.topics: dict[str, frozenset[str]] = {}
        self.add_school_topics(school_topics or {})
        self.default_topics = rules.allowed_topics(())  # of a school that chose none
        self.schools: dict[str, SchoolStats] = {}
        roles = self.programme.roles
        self.teacher_plan = rules.plan("teacher") if "teacher" in roles else None
        self.host_plan = rules.plan("workshop_host") if "workshop_host" in roles else None
        self.host_codes = rules.matches["workshop_host"] if "workshop_host" in roles else {}
        self.admin_codes = rules.matches["school_admin"] if "school_admin" in roles else {}

    def add_school_topics(self, school_topics: Mapping[str, Iterable[str]]) -> None:
        """The chosen topics of more schools (a school not given any keeps the programme's default topics)."""
        self.topics.update({s: self.rules.allowed_topics(t) for s, t in school_topics.items()})

    def teacher(self, person: Person, records: list[RecTuple], assigned: frozenset[str] | set[str] = frozenset()
                ) -> list[Result]:
        """The results of one roster person (records as `RecTuple`s, see `as_tuple`): the teacher role,
        and the host role when they have records on host tasks."""
        out: list[Result] = []
        stats = self.schools.get(person.school)
        if stats is None:
            stats = self.schools[person.school] = SchoolStats()
        if self.teacher_plan is not None:
            r = self.teacher_plan.evaluate(person.key, records, person=person, assigned=assigned,
                                           topics=self.topics.get(person.school, self.default_topics))
            stats.teachers += 1
            if r.passed:
                stats.passed += 1
            out.append(r)
        if self.host_plan is not None and any(rec[1] in self.host_codes for rec in records):
            out.append(self.host_plan.evaluate(person.key, records, person=person, assigned=assigned))
        if self.admin_codes:
            stats.records.extend(rec for rec in records if rec[1] in self.admin_codes)
        return out

    def unchanged(self, person: Person, records: list[RecTuple], passed: bool) -> None:
        """Account for a roster person whose stored result stands (inputs unchanged): what `teacher` would
        have added to the school's figures, without evaluating."""
        stats = self.schools.get(person.school)
        if stats is None:
            stats = self.schools[person.school] = SchoolStats()
        if self.teacher_plan is not None:
            stats.teachers += 1
            if passed:
                stats.passed += 1
        if self.admin_codes:
            stats.records.extend(rec for rec in records if rec[1] in self.admin_codes)

    def has_host_records(self, records: list[RecTuple]) -> bool:
        return self.host_plan is not None and any(rec[1] in self.host_codes for rec in records)

    def finish(self) -> list[Result]:
        """School-admin results, from the teachers' own results in each school."""
        if "school_admin" not in self.programme.roles:
            return []
        plan = self.rules.plan("school_admin")
        return [plan.evaluate(school, stats.records, school=stats) for school, stats in sorted(self.schools.items())]


def evaluate_all(programme: Programme, *, catalog: Mapping[str, Course], people: Iterable[Person],
                 records: Iterable[Any], school_topics: Mapping[str, Iterable[str]] | None = None,
                 assignments: Mapping[str, Iterable[str]] | None = None) -> list[Result]:
    """Every result of a programme from in-memory inputs (the standalone `credits evaluate`). Each record
    needs a `teacher` attribute besides the learning-record fields."""
    rules = Rules(programme, catalog)
    by_teacher: dict[str, list[RecTuple]] = {}
    for rec in records:
        by_teacher.setdefault(rec.teacher, []).append(as_tuple(rec))
    ev = Evaluation(rules, school_topics)
    out: list[Result] = []
    for p in people:
        out.extend(ev.teacher(p, by_teacher.get(p.key, []), frozenset((assignments or {}).get(p.key, ()))))
    out.extend(ev.finish())
    return out
