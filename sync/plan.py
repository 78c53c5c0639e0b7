"""The sync plan: what each roster row, catalog course and school topic choice means for Moodle.

The state transitions are pure functions (`classify`, `absent_kind`, `hold_suspensions`), tested apart
from any I/O; `plan_roster`, `plan_catalog` and `plan_topics` fold them over validated rows and what
the store knows. Nothing here writes: apply (sync/apply.py) carries a plan out and records each
teacher's `row_hash` in the store once Moodle has it.

Memory: a roster plan keeps one small dict entry per teacher of the file (ID number -> first row and
kind), the store's compact `KnownTeachers`, and the actions themselves only while there are few of
them (a re-sync); a first sync of a whole province re-reads the file when its actions are iterated.
A caller that wants only the first actions (a dry run's plan sheet) asks `plan_roster` to keep that many
(`head`) and reads them with `RosterPlan.first_actions`, without a second pass.
"""

from __future__ import annotations

import gc
import heapq
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat
from operator import add, itemgetter, lshift, not_, or_
from pathlib import Path
from typing import Any

from creditbridge import CreditbridgeError
from creditbridge.programmes import ProgrammeFacts
from creditbridge.records.id_number import mask_id_number
from creditbridge.settings.model import InputLimits
from creditbridge.sync.records import (
    ActionKind,
    CatalogRow,
    InvalidRow,
    RosterRow,
    RowError,
    TeacherState,
    TopicRow,
    roster_hash,
)
from creditbridge.sync.validation import duplicate_reason

log = logging.getLogger(__name__)

TRANSFER_LEVELS = ("school", "county", "city")
_KINDS = tuple(ActionKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
_NOT_CLASSIFIED = 7  # kind index of an invalid row whose ID number was valid: present in the file, nothing planned


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


def load_known_teachers(connectable: Any, programme: str) -> KnownTeachers:
    """Stream the programme's Teacher rows into a KnownTeachers (Engine, Connection or Session).

    I/O, kept apart from the pure planning below. The database builds each teacher's compact string
    (hash, status letter, school, county, city) itself, so a million rows arrive as a million 2-tuples
    that go into the dict in C.
    """
    from sqlalchemy import case, func, literal, select
    from sqlalchemy.orm import Session

    from creditbridge.store.models.core import Teacher

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
    from sqlalchemy import select

    from creditbridge.store.models.core import CatalogCourse

    stmt = select(CatalogCourse.code, CatalogCourse.row_hash).where(CatalogCourse.programme == programme)
    rows = session.execute(stmt)
    return {code: h or "" for code, h in rows}


def load_known_topics(session: Any, programme: str) -> dict[str, set[str]]:
    """School code -> the topics the store has for it."""
    from sqlalchemy import select

    from creditbridge.store.models.core import SchoolTopic

    out: dict[str, set[str]] = {}
    for school, topic in session.execute(
            select(SchoolTopic.school_code, SchoolTopic.topic).where(SchoolTopic.programme == programme)):
        out.setdefault(school, set()).add(topic)
    return out


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
    """
    if previous is None:
        return (ActionKind.CREATE if row.active else ActionKind.UNCHANGED), ()
    same = (row_hash or roster_hash(row)) == previous.row_hash
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
    held back by the mass-suspension guard. errors: the first RowErrors by row (at most plan_roster's
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
        # A second pass over the file: validation and classification are pure, so they come out the same.
        known = self._known
        need_hashes = len(known) > 0
        raw_get = known._raw.get if isinstance(known, KnownTeachers) else None
        # No pausing of the garbage collector here: the consumer (apply) runs between the yields.
        for items, hashes in self._replay_chunks(need_hashes, raw_get):
            yield from self._replay_items(items, hashes, held, need_hashes, raw_get)

    def _replay_chunks(
        self, need_hashes: bool, raw_get: Any
    ) -> Iterator[tuple[list[RosterRow | InvalidRow], list[str | None]]]:
        src = self._source
        validator = getattr(src, "validator", None)
        table = getattr(src, "table", None)
        if validator is None or table is None:
            yield from _chunked(src, need_hashes)
            return
        for raw in table.chunks():
            if raw_get is not None and need_hashes:
                ids, hashes, statuses = validator.fingerprints(raw)
                states = map(raw_get, ids, repeat(""))
                same = map(str.startswith, states, map(add, hashes, map(_STATUS_LETTER.get, statuses, repeat("?"))))
                raw = list(compress(raw, map(not_, same)))
                if not raw:
                    continue
            # Always hashed: apply stores each action's row_hash.
            yield validator.chunk(raw, hashes=True)

    def _replay_items(
        self, items: list[RosterRow | InvalidRow], hashes: list[str | None], held: bool, need_hashes: bool,
        raw_get: Any,
    ) -> Iterator[TeacherAction]:
        known = self._known
        dups = self._duplicates
        create, unchanged, suspend = ActionKind.CREATE, ActionKind.UNCHANGED, ActionKind.SUSPEND
        for item, h in zip(items, hashes, strict=True):
            # an InvalidRow is skipped (`type is`, not isinstance: this loop runs once per roster row)
            if type(item) is not RosterRow or item.id_number in dups:
                continue
            previous: TeacherState | None = None
            levels: tuple[str, ...] = ()
            if not need_hashes:
                kind = create if item.status == "active" else unchanged
            elif raw_get is not None:
                st = raw_get(item.id_number, "")
                if not st:
                    kind = create if item.status == "active" else unchanged
                else:
                    previous = KnownTeachers._state(st)
                    kind, levels = classify(item, previous, h)
            else:
                previous = known.get(item.id_number)
                kind, levels = classify(item, previous, h)
            if kind is unchanged or (held and kind is suspend):
                continue
            yield TeacherAction(kind, item.id_number, item, previous, levels)


class _Actions:
    def __init__(self, plan: RosterPlan) -> None:
        self._plan = plan

    def __iter__(self) -> Iterator[TeacherAction]:
        return self._plan._iter_actions()


def plan_roster(
    rows: Iterable[RosterRow | InvalidRow],
    known: Mapping[str, TeacherState],
    *,
    programme: str,
    delta: bool = False,
    force: bool = False,
    suspend_threshold: float = 0.10,
    id_column: str = "身份证号",
    cache_limit: int = 50_000,
    max_errors: int = 1000,
    head: int = 0,
) -> RosterPlan:
    """Plan a roster file in one pass over its validated rows.

    rows: re-iterable (validation.ValidatedRoster, whose `chunks()` is used when present, or a list);
    each pass must give the same rows. A one-shot iterator works too but is then held in memory.
    known: the store's teachers of this programme (KnownTeachers for a province; any mapping in tests).
    An ID number on several rows rejects all of them (one error per row, naming how many rows and the first
    few) and none is planned; a teacher present in the file, even on a rejected row, is never suspended as
    absent. Errors: the `max_errors` first by row are kept in detail, the rest only counted
    (`errors_omitted`), so a careless export with a million bad rows costs a bounded list, not a million
    objects.
    The actions are kept when there are at most `cache_limit` of them; else the first `head` candidates are
    (for `RosterPlan.first_actions`) and iterating `actions` reads the rows again.
    """
    if iter(rows) is rows:  # a one-shot iterator cannot be replayed: keep it
        rows = list(rows)
        cache_limit = len(rows)
    counts = [0] * len(_KINDS)
    by_level = {"school": 0, "county": 0, "city": 0}
    level_names = ("", "school", "county", "city")
    level_index = {"school": 1, "county": 2, "city": 3}
    errors: list[RowError] = []
    # ID number -> row << 5 | highest transfer level << 3 | kind index: the whole-file look duplicates need,
    # one int per teacher.
    first: dict[str, int] = {}
    # Rows of a duplicated ID number: its first `max_errors` rows (all an error list can show) and a count.
    dup_rows: dict[str, list[int]] = {}
    dup_total: dict[str, int] = {}
    omitted = 0

    def add_errors(row_errors: list[RowError]) -> None:
        # Rows come in file order, so the first ones kept are the first by row.
        nonlocal omitted
        if len(errors) < max_errors:
            errors.extend(row_errors)
        else:
            omitted += len(row_errors)

    # The first max(cache_limit, head) candidate actions; `complete` while no candidate was left out.
    cached: list[TeacherAction] = []
    keep_limit = max(cache_limit, head)
    keeping = complete = True
    compact = known if isinstance(known, KnownTeachers) else None
    raw_get = compact._raw.get if compact is not None else None
    known_get = known.get
    unchanged_i = _KIND_INDEX[ActionKind.UNCHANGED]
    transfer_i = _KIND_INDEX[ActionKind.TRANSFER]
    create, unchanged = ActionKind.CREATE, ActionKind.UNCHANGED
    rows_read = 0

    def one(item: RosterRow | InvalidRow, h: str | None) -> None:
        """Any row, with every check: invalid rows, duplicates, classification."""
        if isinstance(item, InvalidRow):
            add_errors(item.errors)
            id_number = item.id_number
            if id_number is None:
                return
            code = item.row << 5 | _NOT_CLASSIFIED
        else:
            id_number = item.id_number
            code = -1
        prior = first.get(id_number)
        if prior is not None:
            # Second or later row of this ID number: withdraw the first row's classification, once.
            rows_seen = dup_rows.get(id_number)
            if rows_seen is None:
                prior_kind = prior & 7
                if prior_kind != _NOT_CLASSIFIED:
                    counts[prior_kind] -= 1
                    if prior_kind == transfer_i:
                        by_level[level_names[(prior >> 3) & 3]] -= 1
                dup_rows[id_number] = [prior >> 5, item.row]
                dup_total[id_number] = 2
            else:
                if len(rows_seen) < max_errors:
                    rows_seen.append(item.row)
                dup_total[id_number] += 1
            return
        if code < 0:
            code = classify_one(item, h,  # type: ignore[arg-type]
                                raw_get(id_number, "") if raw_get is not None else None)
        first[id_number] = code

    def classify_one(item: RosterRow, h: str | None, s: str | None) -> int:
        """Classify a valid, first-seen row; `s` is the compact stored state ("" unknown), None without one."""
        nonlocal keeping, complete
        levels: tuple[str, ...] = ()
        previous: TeacherState | None = None
        if s is None:
            previous = known_get(item.id_number)
            kind, levels = classify(item, previous, h)
        elif not s:
            kind = create if item.status == "active" else unchanged
        else:
            previous = KnownTeachers._state(s)
            kind, levels = classify(item, previous, h)
        ki = _KIND_INDEX[kind]
        counts[ki] += 1
        level = 0
        if ki != unchanged_i:
            if ki == transfer_i:
                top = _highest(levels)
                by_level[top] += 1
                level = level_index[top]
            if keeping:
                if len(cached) < keep_limit:
                    cached.append(TeacherAction(kind, item.id_number, item, previous, levels))
                else:
                    keeping = complete = False  # too many to hold: iterating the actions re-reads the file
        return item.row << 5 | level << 3 | ki

    def fold(items: list[RosterRow | InvalidRow], hashes: list[str | None]) -> None:
        n = len(items)
        if InvalidRow not in map(type, items):
            ids = list(map(_ID, items))
            if first.keys().isdisjoint(ids) and len(set(ids)) == n:
                # Valid rows, none seen before: no duplicate bookkeeping row by row.
                if raw_get is not None and need_hashes:
                    states = list(map(raw_get, ids, repeat("")))
                    keys = map(add, hashes, map(_STATUS_LETTER.__getitem__, map(_STATUS, items)))
                    same = list(map(str.startswith, states, keys))
                    counts[unchanged_i] += same.count(True)
                    first.update(zip(ids, map(or_, map(lshift, map(_ROW, items), repeat(5)), repeat(unchanged_i)),
                                     strict=True))
                    for i in compress(range(n), map(not_, same)):
                        first[ids[i]] = classify_one(items[i], hashes[i], states[i])  # type: ignore[arg-type]
                elif raw_get is not None and not keeping:
                    # Nothing stored (a province's first sync) and no action to keep: each row's kind is
                    # classify(row, None)'s for its status, asked once per status rather than once per row.
                    statuses = list(map(_STATUS, items))
                    probe: RosterRow = items[0]  # type: ignore[assignment]  # a chunk of valid rows only
                    kind_of = {st: _KIND_INDEX[classify(probe._replace(status=st), None)[0]] for st in set(statuses)}
                    kis = list(map(kind_of.__getitem__, statuses))
                    for ki in kind_of.values():
                        counts[ki] += kis.count(ki)
                    first.update(zip(ids, map(or_, map(lshift, map(_ROW, items), repeat(5)), kis), strict=True))
                else:
                    st = "" if raw_get is not None else None  # "": nothing stored at all
                    for item, h, id_number in zip(items, hashes, ids, strict=True):
                        first[id_number] = classify_one(item, h, st)  # type: ignore[arg-type]
                return
        for item, h in zip(items, hashes, strict=True):
            one(item, h)

    # Nothing stored (a first sync): no hash is compared, so none is computed beyond the cached actions'.
    need_hashes = len(known) > 0
    validator = getattr(rows, "validator", None)
    table = getattr(rows, "table", None)
    with _gc_paused():
        if validator is None or table is None:
            for items, hashes in _chunked(rows, True):
                rows_read += len(items)
                fold(items, hashes)
        else:
            for raw in table.chunks():
                n = len(raw)
                rows_read += n
                if raw_get is None or not need_hashes:
                    fold(*validator.chunk(raw, hashes=keeping or need_hashes))
                    continue
                # A re-sync: the export's own text of each row is compared with the store first, so only
                # the rows that differ are validated (an unchanged row was valid when it was stored).
                ids, hashes, statuses = validator.fingerprints(raw)
                if not (first.keys().isdisjoint(ids) and len(set(ids)) == n):
                    fold(*validator.chunk(raw))  # a duplicate somewhere: every row the careful way
                    continue
                states = list(map(raw_get, ids, repeat("")))
                same = list(map(str.startswith, states,
                                map(add, hashes, map(_STATUS_LETTER.get, statuses, repeat("?")))))
                n_same = same.count(True)
                counts[unchanged_i] += n_same
                first.update(zip(ids, map(or_, map(lshift, map(_ROW, raw), repeat(5)), repeat(unchanged_i)),
                                 strict=True))
                if n_same == n:
                    continue
                todo = list(compress(range(n), map(not_, same)))
                items, item_hashes = validator.chunk([raw[i] for i in todo])
                for i, item, h in zip(todo, items, item_hashes, strict=True):
                    if type(item) is InvalidRow:
                        add_errors(item.errors)
                        if item.id_number is None:
                            del first[ids[i]]
                        else:
                            first[ids[i]] = item.row << 5 | _NOT_CLASSIFIED
                    else:
                        first[ids[i]] = classify_one(item, h, states[i])

    errors, omitted = _first_errors(errors, omitted, dup_rows, dup_total, id_column, max_errors)

    absent: list[str] = []
    if not delta:
        if compact is not None:
            raw = compact._raw
            # set arithmetic in C: a province has a million keys
            absent = sorted(k for k in raw.keys() - first.keys() if raw[k][32] == "a")
        else:
            absent = sorted(k for k in known.keys() - first.keys() if known[k].active)
    known_active = compact.active_count if compact is not None else sum(1 for s in known.values() if s.active)
    suspend_i = _KIND_INDEX[ActionKind.SUSPEND]
    suspensions = counts[suspend_i] + len(absent)
    held = 0
    if hold_suspensions(suspensions, known_active, threshold=suspend_threshold, force=force):
        held = suspensions
        counts[suspend_i] = 0
    else:
        counts[suspend_i] = suspensions
    return RosterPlan(
        programme=programme, delta=delta, force=force,
        counts={k.value: counts[i] for i, k in enumerate(_KINDS)}, held=held, errors=errors, errors_omitted=omitted,
        rows_read=rows_read, known_active=known_active, transfers_by_level=by_level,
        _source=rows, _known=known, _duplicates=frozenset(dup_rows), _absent=absent,
        _cached=cached if complete else None, _head=[] if complete else cached,
    )


def _first_errors(errors: list[RowError], omitted: int, dup_rows: dict[str, list[int]], dup_total: dict[str, int],
                  id_column: str, max_errors: int) -> tuple[list[RowError], int]:
    """The `max_errors` first errors by row among the invalid rows' and the duplicates' (one per row of a
    duplicated ID number), and how many others there are. Linear: the duplicates' errors are made only for
    the rows kept, each naming a few rows of its ID number, never all of them (a number on 500,000 rows
    would otherwise put 500,000 row numbers in each of 500,000 messages)."""
    # (row, 0, index into errors) for an invalid row, (row, 1, ID number) for a duplicate's row
    candidates: Iterator[tuple[int, int, int | str]] = chain(((e.row, 0, i) for i, e in enumerate(errors)),
                                                            ((r, 1, k) for k, rows in dup_rows.items() for r in rows))
    kept = heapq.nsmallest(max_errors, candidates)
    reasons: dict[str, str] = {}
    out: list[RowError] = []
    for row, _is_dup, ref in kept:
        if isinstance(ref, int):
            out.append(errors[ref])
            continue
        reason = reasons.get(ref)
        if reason is None:
            reason = reasons[ref] = duplicate_reason(
                "ID number", mask_id_number(ref), dup_rows[ref], dup_total[ref])
        out.append(RowError(row=row, column=id_column, reason=reason))
    total = len(errors) + omitted + sum(dup_total.values())
    return out, total - len(out)


_ID = itemgetter(1)
_ROW = itemgetter(0)
_STATUS = itemgetter(10)
_STATUS_LETTER: dict[str | None, str] = {"active": "a", "left": "s"}


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A roster pass allocates millions of short-lived tuples; generational collections then keep scanning
    # the containers that survive (cached actions) for cycles that cannot exist. Pausing it halves the pass.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _chunked(
    rows: Iterable[RosterRow | InvalidRow], hashes: bool = True, size: int = 256
) -> Iterator[tuple[list[RosterRow | InvalidRow], list[str | None]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk, [None if not hashes or isinstance(x, InvalidRow) else x.row_hash for x in chunk]


def _highest(levels: tuple[str, ...]) -> str:
    for level in ("city", "county", "school"):
        if level in levels:
            return level
    return "school"


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
) -> RosterPlan:
    """Read, validate and plan a roster file (the entry point apply uses). head: see plan_roster."""
    from creditbridge.sync.readers import read_roster
    from creditbridge.sync.validation import ValidatedRoster

    limits = limits or InputLimits()
    table = read_roster(path, header_map, limits)
    return plan_roster(ValidatedRoster(table, subjects), known, programme=programme, delta=delta, force=force,
                       suspend_threshold=suspend_threshold, id_column=table.column("id_number"),
                       max_errors=limits.max_errors, head=head)


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
