"""The roster plan's rules, on named records: what each roster row means for its teacher's Moodle account.

`classify`, `absent_kind`, `hold_suspensions` and `transfer_levels` are the state transitions;
`plan_roster_reference` folds them over a file's validated rows one row at a time with plain dicts and lists,
and is the definition of a roster plan. `plan_kernel.plan_roster` computes the same plan fast enough for a
province of a million teachers (batched, on compact state); tests/sync/test_plan_kernel.py checks on
generated rosters and stores that both give the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from creditbridge.records.id_number import mask_id_number
from creditbridge.sync.records import ActionKind, InvalidRow, RosterRow, RowError, TeacherState
from creditbridge.sync.validation import duplicate_reason

TRANSFER_LEVELS = ("school", "county", "city")


# --- what the store knows -------------------------------------------------------------------------------------


class KnownTeachers(Mapping[str, TeacherState]):
    """ID number -> TeacherState for a whole province, kept compact.

    Each teacher is one string (hash, status letter, school, county, city) rather than a tuple of five
    objects, which halves the memory of a million teachers; TeacherState is built on access.
    """

    __slots__ = ("_raw", "active_count")
    _SEP = "\x1f"

    def __init__(self) -> None:
        self._raw: dict[str, str] = {}
        self.active_count = 0

    def add(self, id_number: str, row_hash: str | None, school_code: str, county: str, city: str,
            status: str) -> None:
        h = (row_hash or "").ljust(32)[:32]
        old = self._raw.get(id_number)
        if old is not None and old[32] == "a":
            self.active_count -= 1
        letter = "a" if status == "active" else "s"
        if letter == "a":
            self.active_count += 1
        self._raw[id_number] = f"{h}{letter}{school_code}\x1f{county}\x1f{city}"

    @classmethod
    def from_states(cls, states: Mapping[str, TeacherState]) -> KnownTeachers:
        k = cls()
        for id_number, s in states.items():
            k.add(id_number, s.row_hash, s.school_code, s.county, s.city, s.status)
        return k

    def __getitem__(self, id_number: str) -> TeacherState:
        return self._state(self._raw[id_number])

    def get_raw(self, id_number: str) -> str | None:
        return self._raw.get(id_number)

    @staticmethod
    def _state(s: str) -> TeacherState:
        school, county, city = s[33:].split("\x1f")
        return TeacherState(s[:32].rstrip(), school, county, city, "active" if s[32] == "a" else "suspended")

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def active_ids(self) -> Iterator[str]:
        return (k for k, s in self._raw.items() if s[32] == "a")



# --- pure state transitions ---------------------------------------------------------------------------------


def transfer_levels(row: RosterRow, previous: TeacherState) -> tuple[str, ...]:
    """Which of school, county, city differ between the row and the store (in that order).

    A county is known by its city and its name (several cities have a 市中区), so a move across cities
    always crosses counties too.
    """
    levels: list[str] = []
    city_changed = row.city != previous.city
    if row.school_code != previous.school_code:
        levels.append("school")
    if city_changed or row.county != previous.county:
        levels.append("county")
    if city_changed:
        levels.append("city")
    return tuple(levels)


def classify(
    row: RosterRow, previous: TeacherState | None, row_hash: str | None = None
) -> tuple[ActionKind, tuple[str, ...]]:
    """What a roster row means for a teacher the store knows as `previous` (None: never synced).

    - unknown and serving -> create; unknown and a leaver -> unchanged (nobody to suspend);
    - suspended in the store and serving again -> reactivate (with transfer levels if they moved);
    - suspended and still a leaver -> unchanged, or update when other fields changed;
    - active and now a leaver (离职, 调出 …) -> suspend;
    - active, same hash -> unchanged; school/county/city changed -> transfer; other fields -> update.
    The hash is `row_hash` when the caller has it at hand, else the row's own (RosterRow.row_hash: for a row
    read from a file, the export's text, which is what apply stored).
    """
    if previous is None:
        return (ActionKind.CREATE if row.active else ActionKind.UNCHANGED), ()
    same = (row_hash or row.row_hash) == previous.row_hash
    if not previous.active:
        if row.active:
            return ActionKind.REACTIVATE, transfer_levels(row, previous)
        return (ActionKind.UNCHANGED if same else ActionKind.UPDATE), ()
    if not row.active:
        return ActionKind.SUSPEND, ()
    if same:
        return ActionKind.UNCHANGED, ()
    levels = transfer_levels(row, previous)
    return (ActionKind.TRANSFER, levels) if levels else (ActionKind.UPDATE, ())


def absent_kind(previous: TeacherState, *, delta: bool) -> ActionKind:
    """A known teacher missing from the file: suspended by a full export, left alone by a delta."""
    if delta or not previous.active:
        return ActionKind.UNCHANGED
    return ActionKind.SUSPEND


def hold_suspensions(suspensions: int, known_active: int, *, threshold: float, force: bool) -> bool:
    """True when a run's suspensions must be held back: more than `threshold` of the known active teachers
    would go and the run is not forced. Full and delta runs alike: a truncated full export and a delta that
    marks a whole province 离职 by mistake must both be stopped before they empty it."""
    if force or known_active <= 0:
        return False
    return suspensions > threshold * known_active


# --- roster plan -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class TeacherAction:
    """One thing apply does for one teacher.

    roster_row is None for a teacher suspended because a full export no longer lists them. previous is
    None for a create. The Moodle account's target state is: suspended unless `roster_row` is a serving
    teacher. transfer_levels lists what changed among school, county, city (cohort memberships to move).
    """

    kind: ActionKind
    id_number: str
    roster_row: RosterRow | None
    previous: TeacherState | None
    transfer_levels: tuple[str, ...] = ()

    @property
    def transfer_level(self) -> str | None:
        """The highest level crossed: "city", "county" or "school" (who must approve, in the programme)."""
        for level in ("city", "county", "school"):
            if level in self.transfer_levels:
                return level
        return None

    @property
    def row_hash(self) -> str | None:
        """The hash apply stores after success (None for a suspension by absence: keep the stored one)."""
        return self.roster_row.row_hash if self.roster_row is not None else None


@dataclass
class RosterPlan:
    """The plan of one roster file.

    counts: {kind: n} for every ActionKind value (create, update, transfer, suspend, reactivate,
    unchanged); "suspend" counts the suspensions that will be applied (0 when held). held: suspensions
    held back by the mass-suspension guard. errors: the first RowErrors by row (at most the planner's
    max_errors), errors_omitted: how many more there are. `actions` is
    re-iterable and yields the TeacherActions to carry out (no unchanged ones, no held suspensions):
    first the file's rows in file order, then the suspensions of teachers absent from a full export.
    """

    programme: str
    delta: bool
    force: bool
    counts: dict[str, int]
    held: int
    errors: list[RowError]
    rows_read: int
    known_active: int
    transfers_by_level: dict[str, int]
    _source: Iterable[RosterRow | InvalidRow] = field(repr=False)
    _known: Mapping[str, TeacherState] = field(repr=False)
    _duplicates: frozenset[str] = field(repr=False)
    _absent: list[str] = field(repr=False)
    _cached: list[TeacherAction] | None = field(repr=False)
    errors_omitted: int = 0
    # The first candidate actions of the file's rows, kept when they are not all (`_cached` is then None).
    _head: list[TeacherAction] = field(default_factory=list, repr=False)
    # How the planner reads the file again for `actions` when `_cached` is None.
    _reread: Callable[[RosterPlan, bool], Iterator[TeacherAction]] | None = field(default=None, repr=False)

    @property
    def absent(self) -> list[str]:
        """ID numbers of the active teachers a full export no longer lists (sorted; empty for a delta)."""
        return list(self._absent)

    @property
    def actions(self) -> Iterable[TeacherAction]:
        return _Actions(self)

    @property
    def action_count(self) -> int:
        return sum(n for k, n in self.counts.items() if k != ActionKind.UNCHANGED)

    @property
    def suspensions_held(self) -> bool:
        return self.held > 0

    def as_json(self) -> dict[str, Any]:
        return {**self.counts, "held": self.held, "rows": self.rows_read,
                "errors": [e.as_json() for e in self.errors], "errors_omitted": self.errors_omitted}

    def first_actions(self, n: int) -> list[TeacherAction]:
        """The first `n` of `actions`, the same list as `list(islice(plan.actions, n))`, taken from the actions
        kept by the first pass when they suffice (plan_roster's `head`), else from a second pass."""
        if self._cached is not None or len(self._head) < n:
            return list(islice(self.actions, n))
        # The head holds candidates: a row whose ID number turned out duplicated later, or a held suspension,
        # is dropped as _iter_actions drops it; fewer than n left means the rest is only in the file.
        kept = list(islice(self._kept(self._head), n))
        return kept if len(kept) == n else list(islice(self.actions, n))

    def _kept(self, candidates: list[TeacherAction]) -> Iterator[TeacherAction]:
        held = self.held > 0
        for a in candidates:
            if a.id_number in self._duplicates or (held and a.kind is ActionKind.SUSPEND):
                continue
            yield a

    def _iter_actions(self) -> Iterator[TeacherAction]:
        held = self.held > 0
        if self._cached is not None:
            yield from self._kept(self._cached)
        else:
            yield from self._replay(held)
        if not held:
            known = self._known
            for id_number in self._absent:
                yield TeacherAction(ActionKind.SUSPEND, id_number, None, known[id_number])

    def _replay(self, held: bool) -> Iterator[TeacherAction]:
        # A second pass over the file, by the planner that made the plan (plan_kernel): validation and
        # classification are pure, so they come out the same.
        if self._reread is None:
            raise RuntimeError("this plan holds all its actions; it has no second pass")
        return self._reread(self, held)


class _Actions:
    def __init__(self, plan: RosterPlan) -> None:
        self._plan = plan

    def __iter__(self) -> Iterator[TeacherAction]:
        return self._plan._iter_actions()


# --- the reference planner -------------------------------------------------------------------------------------


def plan_roster_reference(
    rows: Iterable[RosterRow | InvalidRow],
    known: Mapping[str, TeacherState],
    *,
    programme: str,
    delta: bool = False,
    force: bool = False,
    suspend_threshold: float = 0.10,
    id_column: str = "身份证号",
    max_errors: int = 1000,
) -> RosterPlan:
    """The roster plan of validated rows against the store's teachers, one row at a time.

    - an ID number on several rows rejects all of them: one error per row, none is planned;
    - an invalid row's errors are reported and nothing of it is planned;
    - each other row is classified against the store (`classify`);
    - a full export suspends the active teachers it no longer lists (`absent_kind`), never a teacher present
      in the file, even on a rejected row; a delta leaves them alone;
    - all suspensions are held back when there are too many (`hold_suspensions`);
    - errors are kept by row, the first `max_errors` in detail, the others counted.
    Actions: the file's rows in file order, then the absent teachers by ID number.
    """
    items = list(rows)
    rows_of: dict[str, list[int]] = {}  # ID number -> its rows (valid or not), in file order
    for item in items:
        if item.id_number is not None:
            rows_of.setdefault(item.id_number, []).append(item.row)
    duplicated = {id_number for id_number, lines in rows_of.items() if len(lines) > 1}

    # (row, 0, error) for an invalid row's errors, (row, 1, error) for a duplicate's: by row, invalid ones first
    errors: list[tuple[int, int, RowError]] = []
    counts = {kind.value: 0 for kind in ActionKind}
    by_level = dict.fromkeys(TRANSFER_LEVELS, 0)
    actions: list[TeacherAction] = []
    for item in items:
        if isinstance(item, InvalidRow):
            errors.extend((e.row, 0, e) for e in item.errors)
        if item.id_number in duplicated:
            lines = rows_of[item.id_number]
            reason = duplicate_reason("ID number", mask_id_number(item.id_number), lines, len(lines))
            errors.append((item.row, 1, RowError(row=item.row, column=id_column, reason=reason)))
            continue
        if isinstance(item, InvalidRow):
            continue
        previous = known.get(item.id_number)
        kind, levels = classify(item, previous)
        counts[kind.value] += 1
        if kind is ActionKind.TRANSFER:
            by_level[levels[-1]] += 1  # the highest level crossed: transfer_levels lists them upwards
        if kind is not ActionKind.UNCHANGED:
            actions.append(TeacherAction(kind, item.id_number, item, previous, levels))

    absent = sorted(id_number for id_number, state in known.items()
                    if id_number not in rows_of and absent_kind(state, delta=delta) is ActionKind.SUSPEND)
    known_active = sum(1 for state in known.values() if state.active)
    suspensions = counts[ActionKind.SUSPEND] + len(absent)
    held = suspensions if hold_suspensions(suspensions, known_active, threshold=suspend_threshold,
                                           force=force) else 0
    counts[ActionKind.SUSPEND] = suspensions - held
    if held:
        actions = [a for a in actions if a.kind is not ActionKind.SUSPEND]
    errors.sort(key=lambda e: e[:2])
    return RosterPlan(
        programme=programme, delta=delta, force=force, counts=counts, held=held,
        errors=[e for _, _, e in errors[:max_errors]], errors_omitted=max(0, len(errors) - max_errors),
        rows_read=len(items), known_active=known_active, transfers_by_level=by_level,
        _source=items, _known=known, _duplicates=frozenset(duplicated), _absent=absent, _cached=actions,
    )
