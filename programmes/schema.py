"""The rule-file schema: what a programme's credit rules may say (PROGRAMMES.md, "primitives").

A rule file names catalog codes, kinds, topics and modes, never LMS ids. Every number a programme
document states, and every default PROGRAMMES.md names where a document is vague, is a field here
with the value set in the programme's YAML file, so changing a rule never means changing code.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

RoleName = Literal["teacher", "workshop_host", "school_admin"]
Mode = Literal["online", "offline"]
Kind = Literal["lesson_case", "required", "elective", "task"]
# What a component adds up from the records it counts:
#   hours  - hours of each distinct passed course (catalog hours when a record has none)
#   minutes - minutes of time records (viewing time), summed
#   score  - best score per distinct course or activity, summed (e.g. a host's grade out of 20)
#   count  - number of distinct passed courses or activities
#   pass_rate - school_admin only: % of the school's teachers whose teacher result passed
#   share_of_teachers - school_admin only: best record score as a % of the school's teacher count
Measure = Literal["hours", "minutes", "score", "count", "pass_rate", "share_of_teachers"]
TeacherField = Literal["stage", "subject", "city"]


def _not_below(lower: str, v: float | None, info: ValidationInfo) -> float | None:
    """An upper bound (cap, ceiling, maximum) may not sit under the lower bound declared before it."""
    lo = info.data.get(lower)
    if v is not None and lo is not None and v < lo:
        raise ValueError(f"must be ≥ {lower} ({lo:g})")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """Inclusive dates in the programme's time zone."""

    start: date
    end: date

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, v: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and v < start:
            raise ValueError(f"must be on or after start ({start})")
        return v


class Selector(_Strict):
    """Which catalog courses (or record course codes) a component counts. Fields combine with AND,
    the values of one field with OR; an empty list means "any"."""

    codes: list[str] = Field(default_factory=list)
    kinds: list[Kind] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    modes: list[Mode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if not (self.codes or self.kinds or self.topics or self.modes):
            raise ValueError("select needs at least one of codes, kinds, topics, modes")
        return self


class Pool(_Strict):
    """Random assignment: `n` items per teacher from the selection, filtered by the teacher's fields.
    Sync draws the assignment; the evaluator counts only assigned items and expects `n` of them."""

    n: int = Field(ge=1)
    match: list[TeacherField] = Field(default_factory=list)


class Proportional(_Strict):
    """points × min(value / full_at, 1)."""

    full_at: float = Field(gt=0)
    points: float = Field(ge=0)


class Tier(_Strict):
    at_least: float
    points: float = Field(ge=0)


class Points(_Strict):
    """How a component's value becomes points. Exactly one of fixed, per_item, proportional,
    from_value, tiers; `cap` limits the result."""

    fixed: float | None = Field(default=None, ge=0)
    per_item: float | None = Field(default=None, ge=0)
    proportional: Proportional | None = None
    from_value: bool = False
    tiers: list[Tier] = Field(default_factory=list)
    cap: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Points:
        given = [n for n, v in (("fixed", self.fixed), ("per_item", self.per_item),
                                ("proportional", self.proportional)) if v is not None]
        given += ["from_value"] if self.from_value else []
        given += ["tiers"] if self.tiers else []
        if len(given) != 1:
            raise ValueError("needs exactly one of fixed, per_item, proportional, from_value, tiers "
                             f"(got {', '.join(given) or 'none'})")
        return self

    @field_validator("tiers")
    @classmethod
    def _tiers_descending(cls, v: list[Tier]) -> list[Tier]:
        bounds = [t.at_least for t in v]
        if bounds != sorted(bounds, reverse=True) or len(set(bounds)) != len(bounds):
            raise ValueError("tiers must be listed from the highest at_least down, without repeats")
        return v


class GradeBands(_Strict):
    """优秀/合格/不合格 from a component's value (or points when it scores points)."""

    excellent_at: float
    pass_at: float

    @model_validator(mode="after")
    def _excellent_above_pass(self) -> GradeBands:
        if self.excellent_at < self.pass_at:
            raise ValueError("excellent_at must be ≥ pass_at")
        return self


class Component(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label_en: str | None = None  # "elective" in "elective hours 12 < 14"; default: the name
    label_zh: str | None = None
    item_en: str | None = None  # "lesson case" in "lesson case SD22-L-0042 not passed"
    item_zh: str | None = None
    select: Selector | None = None  # every measure but pass_rate needs one
    match_teacher: list[TeacherField] = Field(default_factory=list)
    assigned_only: bool = False
    pool: Pool | None = None
    school_topics: bool = False
    measure: Measure = "hours"
    counts: Literal["passed", "any"] = "passed"
    min_score: float | None = None  # pass condition when a record says nothing about passed
    hours_each: float | None = Field(default=None, ge=0)
    minimum: float | None = Field(default=None, ge=0)
    cap: float | None = Field(default=None, ge=0)
    min_count: int | None = Field(default=None, ge=1)
    require_all: bool = False
    required: bool = True  # a shortfall here fails the role
    adds_to_total: bool = True  # False for a check inside another component (a restricted elective)
    external: bool = False  # recorded outside the LMS (imported records)
    # The component's own study window inside the programme's (sd-early: subject courses 16 Jul–15 Nov while
    # general topics run to the credit deadline); a record outside it counts for nothing here.
    window: Window | None = None
    points: Points | None = None
    grade: GradeBands | None = None

    @field_validator("cap")
    @classmethod
    def _cap_not_below_minimum(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _not_below("minimum", v, info)

    @field_validator("pool")
    @classmethod
    def _pool_needs_assignment(cls, v: Pool | None, info: ValidationInfo) -> Pool | None:
        if v is not None and not info.data.get("assigned_only"):
            raise ValueError("a random-assignment pool counts assigned items only: set assigned_only: true")
        return v

    @model_validator(mode="after")
    def _select_given(self) -> Component:
        if self.select is None and self.measure != "pass_rate":
            raise ValueError(f"component {self.name}: select is required (which courses it counts)")
        return self

    @property
    def en(self) -> str:
        return self.label_en or self.name.replace("_", " ")

    @property
    def zh(self) -> str:
        return self.label_zh or self.en

    @property
    def item(self) -> tuple[str, str]:
        return (self.item_en or "course", self.item_zh or "课程")

    @property
    def wanted_count(self) -> int | None:
        return self.min_count if self.min_count is not None else (self.pool.n if self.pool else None)


class Group(_Strict):
    """Minimums and caps over several components (category subtotals, nested levels)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label_en: str | None = None
    label_zh: str | None = None
    components: list[str] = Field(min_length=1)  # component or group names defined earlier
    minimum: float | None = Field(default=None, ge=0)
    cap: float | None = Field(default=None, ge=0)

    @field_validator("cap")
    @classmethod
    def _cap_not_below_minimum(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _not_below("minimum", v, info)


class Total(_Strict):
    minimum_hours: float | None = Field(default=None, ge=0)
    maximum_hours: float | None = Field(default=None, ge=0)  # a yearly ceiling: hours above it don't count
    pass_mark: float | None = Field(default=None, ge=0)  # points
    maximum_points: float | None = Field(default=None, ge=0)

    @field_validator("maximum_hours")
    @classmethod
    def _max_not_below_min(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _not_below("minimum_hours", v, info)


HourKey = Literal["any", "online", "offline"]
_ANY_MODE: dict[HourKey, float] = {"any": 1.0}  # one ratio for every delivery mode


class Credits(_Strict):
    """Hours → credits: a ratio per delivery mode, a role weight, a rounding rule, a ceiling."""

    hours_per_credit: dict[HourKey, float] = Field(default_factory=lambda: _ANY_MODE.copy())
    weight: float = Field(default=1.0, gt=0)
    rounding: Literal["none", "floor", "ceil", "half_up"] = "none"
    decimals: int = Field(default=0, ge=0, le=2)
    maximum: float | None = Field(default=None, ge=0)
    fixed: float | None = Field(default=None, ge=0)  # credits when passed, whatever the hours
    when_failed: Literal["earned", "zero"] = "earned"

    @field_validator("hours_per_credit")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("needs at least one ratio (any, online or offline)")
        for k, r in v.items():
            if r <= 0:
                raise ValueError(f"{k}: hours per credit must be > 0")
        if "any" not in v and set(v) != {"online", "offline"}:
            raise ValueError("give `any`, or both `online` and `offline`")
        return v


class Role(_Strict):
    # roster: every teacher of the roster; records: whoever has a record on the role's components
    # (workshop hosts); school: one result per school (school admin, keyed by school code).
    population: Literal["roster", "records", "school"] = "roster"
    scoring: Literal["hours", "points"] = "hours"
    components: list[Component] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)
    total: Total = Field(default_factory=Total)
    register_hours: dict[HourKey, float] | None = None  # hours registered when passed (points roles)
    credits: Credits | None = None
    grade_rule: Literal["all_excellent_any_fail"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Role:
        names = [c.name for c in self.components]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"component names must be unique: {', '.join(dupes)}")
        known = set(names)
        for g in self.groups:
            for m in g.components:
                if m not in known:
                    raise ValueError(f"group {g.name}: no component or earlier group named {m!r}")
            known.add(g.name)
        for c in self.components:
            if c.measure in ("pass_rate", "share_of_teachers") and self.population != "school":
                raise ValueError(f"component {c.name}: measure {c.measure} needs population: school")
            if self.scoring == "points" and c.points is None and c.minimum is None and not c.require_all:
                raise ValueError(f"component {c.name}: a points role needs points, a minimum or require_all")
        if self.scoring == "hours" and self.total.pass_mark is not None:
            raise ValueError("total.pass_mark is for scoring: points")
        return self


class Topics(_Strict):
    """Topic sets chosen per school: at most `max_per_school`, mandatory ones always in; `free`
    topics count without being chosen."""

    max_per_school: int | None = Field(default=None, ge=1)
    mandatory: list[str] = Field(default_factory=list)
    free: list[str] = Field(default_factory=list)

    @field_validator("mandatory")
    @classmethod
    def _fits(cls, v: list[str], info: ValidationInfo) -> list[str]:
        mx = info.data.get("max_per_school")
        if mx is not None and len(v) > mx:
            raise ValueError(f"{len(v)} mandatory topics exceed max_per_school ({mx})")
        return v


class Cycle(_Strict):
    """A multi-year cycle with floors and ceilings over the cycle (yearly ones are in roles.*.total).

    Each yearly programme file of one cycle declares the same cycle; `id` is what ties them together
    (mappings/cycle.py adds their stored results up). When a file leaves it out, mappings.cycle.cycle_id
    derives it from the programme id without its year, start_year and the last year (jx-2018 → jx-2018-2022),
    so a file written before the id existed still joins the cycle its next year's file names."""

    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    years: int = Field(ge=1)
    start_year: int = Field(ge=2000, le=2100)
    floor_hours: float | None = Field(default=None, ge=0)
    ceiling_hours: float | None = Field(default=None, ge=0)
    must_cover_topics: list[str] = Field(default_factory=list)
    # which yearly results add their hours to the cycle: passed ones only, or any (a failed year's hours too)
    counts: Literal["passed", "any"] = "passed"

    @field_validator("ceiling_hours")
    @classmethod
    def _ceiling(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _not_below("floor_hours", v, info)


class Programme(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    name_en: str | None = None
    year: int = Field(ge=2000, le=2100)
    version: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    window: Window  # study window: a record outside it counts for nothing
    course_choice: Window | None = None
    deadline: date  # credits registered by
    cycle: Cycle | None = None
    topics: Topics = Field(default_factory=Topics)
    roles: dict[RoleName, Role] = Field(min_length=1)
    hash: str = ""  # sha256 of the file, set by load_programme; a file may not set it

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int | float) else v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @field_validator("deadline")
    @classmethod
    def _deadline_after_start(cls, v: date, info: ValidationInfo) -> date:
        w = info.data.get("window")
        if w is not None and v < w.start:
            raise ValueError(f"must be on or after the window start ({w.start})")
        return v

    @field_validator("roles")
    @classmethod
    def _component_windows_inside(cls, v: dict[str, Role], info: ValidationInfo) -> dict[str, Role]:
        w = info.data.get("window")
        for role_name, role in v.items():
            for i, c in enumerate(role.components):
                if w is not None and c.window is not None and (c.window.start < w.start or c.window.end > w.end):
                    raise ValueError(f"{role_name}.components.{i}.window ({c.window.start} – {c.window.end}) must "
                                     f"lie inside the programme window ({w.start} – {w.end})")
        return v

    @field_validator("roles")
    @classmethod
    def _role_populations(cls, v: dict[str, Role]) -> dict[str, Role]:
        if "school_admin" in v and v["school_admin"].population != "school":
            raise ValueError("school_admin: population must be school")
        if "teacher" in v and v["teacher"].population != "roster":
            raise ValueError("teacher: population must be roster")
        if "school_admin" in v and any(c.measure == "pass_rate" for c in v["school_admin"].components) \
                and "teacher" not in v:
            raise ValueError("school_admin pass_rate needs a teacher role")
        return v

    def lesson_case_pool(self) -> Pool | None:
        """The random-assignment pool sync draws lesson cases from (None when the programme has none)."""
        for role in self.roles.values():
            for c in role.components:
                if c.pool is not None:
                    return c.pool
        return None
