"""The roster planner's fast kernel: `roster_plan.plan_roster_reference`'s plan, computed for a province.

A million-row roster must plan within a few times a bare CSV pass, so the rows are taken in chunks and each
chunk's common case is decided with C-level map/zip over whole columns:
- a re-sync compares each row's source hash and status with the store's compact string first
  (`KnownTeachers._raw`: hash, status letter, school, county, city) and validates only the rows that differ;
- a chunk of valid first-seen rows skips the duplicate bookkeeping row by row;
- a first sync asks `classify` once per status rather than once per row, makes the actions it keeps column by
  column, and past those counts a chunk of valid rows from their ID numbers and statuses alone
  (`RosterValidator.screen`: no RosterRow per row).
Every row those shortcuts do not settle goes through `classify` itself, so the rules live in roster_plan.py
only. The whole-file state is one int per teacher (row << 5 | highest transfer level << 3 | kind index), and
the garbage collector is paused during the pass. tests/sync/test_plan_kernel.py checks on generated rosters
and stores that this planner and the reference give the same plan, for chunks of 1, 17 and 256 rows.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from itertools import chain, compress, islice, repeat
from operator import add, itemgetter, lshift, ne, not_, or_
from typing import Any

from creditbridge.records.id_number import mask_id_number
from creditbridge.sync.records import ActionKind, InvalidRow, RosterRow, RowError, TeacherState
from creditbridge.sync.roster_plan import KnownTeachers, RosterPlan, TeacherAction, classify, hold_suspensions
from creditbridge.sync.validation import DUP_ROWS_NAMED, duplicate_reason

_KINDS = tuple(ActionKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
_NOT_CLASSIFIED = 7  # kind index of an invalid row whose ID number was valid: present in the file, nothing planned


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
    chunk_size: int = 256,
    list_only: bool = False,
) -> RosterPlan:
    """Plan a roster file in one pass over its validated rows: the plan `roster_plan.plan_roster_reference`
    defines, computed in batches of `chunk_size` rows on compact state.

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
    list_only: the kept actions are only listed (a dry run's plan sheet), never applied, so a first sync's
    rows are not hashed for them: their `source_hash` is None (row_hash falls back to roster_hash).
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
    # Rows of a duplicated ID number: its first rows (all an error list can show, and at least the few each of
    # its errors names) and a count.
    dup_rows_kept = max(max_errors, DUP_ROWS_NAMED)
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
                if len(rows_seen) < dup_rows_kept:
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
            kind, levels = classify(item, None)  # nothing stored for this teacher
        else:
            previous = KnownTeachers._state(s)
            kind, levels = classify(item, previous, h)
        ki = _KIND_INDEX[kind]
        counts[ki] += 1
        level = 0
        if ki != unchanged_i:
            if ki == transfer_i:
                top = levels[-1]  # the highest level crossed: transfer_levels lists them upwards
                by_level[top] += 1
                level = level_index[top]
            if keeping:
                if len(cached) < keep_limit:
                    cached.append(TeacherAction(kind, item.id_number, item, previous, levels))
                else:
                    keeping = complete = False  # too many to hold: iterating the actions re-reads the file
        return item.row << 5 | level << 3 | ki

    # A first sync: classify(row, None)'s kind index for a row of each status (it depends on nothing else).
    kind_of_status: dict[str, int] = {}

    def fold_first_seen(nums: list[int], ids: list[str], statuses: list[str], row_of: Callable[[int], Any],
                        items: list[RosterRow] | None = None) -> bool:
        """A first sync's chunk of valid rows: each row's kind is classify's for its status, asked once per status
        (`row_of(i)`: the RosterRow of the chunk's row i), and while actions are kept, they are made from `items`
        (the chunk's RosterRows, needed then). False, and nothing done, when an ID number was seen before or
        repeats: the chunk then needs the duplicate bookkeeping."""
        nonlocal keeping, complete
        if not (first.keys().isdisjoint(ids) and len(set(ids)) == len(ids)):
            return False
        for st in set(statuses) - kind_of_status.keys():
            kind_of_status[st] = _KIND_INDEX[classify(row_of(statuses.index(st)), None)[0]]
        kis = list(map(kind_of_status.__getitem__, statuses))
        for ki in set(kis):
            counts[ki] += kis.count(ki)
        first.update(zip(ids, map(or_, map(lshift, nums, repeat(5)), kis), strict=True))
        if keeping:
            assert items is not None, "actions are kept from RosterRows"
            # As classify_one keeps them: the candidates in file order until the limit, then none.
            wanted = list(compress(range(len(kis)), map(ne, kis, repeat(unchanged_i))))
            taken = wanted[:keep_limit - len(cached)]
            cached.extend(map(TeacherAction, map(_KINDS.__getitem__, map(kis.__getitem__, taken)),
                              map(ids.__getitem__, taken), map(items.__getitem__, taken), repeat(None)))
            if len(taken) < len(wanted):
                keeping = complete = False  # too many to hold: iterating the actions re-reads the file
        return True

    def fold(items: list[RosterRow | InvalidRow], hashes: list[str | None]) -> None:
        n = len(items)
        if InvalidRow not in map(type, items):
            ids = list(map(_ID, items))
            if raw_get is not None and not need_hashes:
                # Nothing stored: a province's first sync.
                if fold_first_seen(list(map(_ROW, items)), ids, list(map(_STATUS, items)), items.__getitem__,
                                   items):  # type: ignore[arg-type]  # valid rows only
                    return
            elif first.keys().isdisjoint(ids) and len(set(ids)) == n:
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
                else:  # a plain mapping of the stored teachers (tests)
                    for item, h, id_number in zip(items, hashes, ids, strict=True):
                        first[id_number] = classify_one(item, h, None)  # type: ignore[arg-type]
                return
        for item, h in zip(items, hashes, strict=True):
            one(item, h)

    # Nothing stored (a first sync): no hash is compared, so none is computed beyond the cached actions' (which
    # apply stores; a dry run's are only listed).
    need_hashes = len(known) > 0
    hash_kept = not list_only
    validator = getattr(rows, "validator", None)
    table = getattr(rows, "table", None)
    with _gc_paused():
        if validator is None or table is None:
            for items, hashes in _chunked(rows, True, chunk_size):
                rows_read += len(items)
                fold(items, hashes)
        else:
            for raw in table.chunks(chunk_size):
                n = len(raw)
                rows_read += n
                if raw_get is None or not need_hashes:
                    if raw_get is not None and not keeping:
                        # A first sync past the kept actions: a chunk whose rows are all valid is counted from
                        # their ID numbers and statuses, without making a RosterRow of each.
                        screened = validator.screen(raw)
                        if screened is not None and fold_first_seen(list(map(_ROW, raw)), screened[0], screened[1],
                                                                    partial(_validate_nth, validator, raw)):
                            continue
                    fold(*validator.chunk(raw, hashes=(keeping and hash_kept) or need_hashes))
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
        _reread=partial(_replay, chunk_size=chunk_size),
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


def _validate_nth(validator: Any, rows: list[tuple[int, list[str]]], i: int) -> RosterRow | InvalidRow:
    return validator(*rows[i])


_ID = itemgetter(1)
_ROW = itemgetter(0)
_STATUS = itemgetter(10)
_STATUS_LETTER: dict[str | None, str] = {"active": "a", "left": "s"}


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A roster pass allocates millions of short-lived tuples; generational collections then keep scanning
    # the containers that survive (cached actions) for cycles that cannot exist. Pausing it halves the pass.
    # What the block leaves alive (a province's 200,000 kept actions, or the report's 200,000 plan lines) is
    # then moved straight to the oldest generation, as freeze-then-unfreeze does, instead of being left young:
    # the first young collections after the pause would scan all of it, twice (a tenth of a province's dry
    # run). Only when nothing is frozen already: unfreezing would also release what the host process froze
    # (a pre-fork server keeping its pages shared), and that is not ours to thaw.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _chunked(
    rows: Iterable[RosterRow | InvalidRow], hashes: bool = True, size: int = 256
) -> Iterator[tuple[list[RosterRow | InvalidRow], list[str | None]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk, [None if not hashes or isinstance(x, InvalidRow) else x.row_hash for x in chunk]


def _replay(plan: RosterPlan, held: bool, chunk_size: int = 256) -> Iterator[TeacherAction]:
    """RosterPlan's second pass over the file, for a plan whose actions were too many to keep: the rows
    that differ from the store are validated and classified again (both are pure, so they come out the
    same) and the first pass's duplicates left out."""
    known = plan._known
    need_hashes = len(known) > 0
    raw_get = known._raw.get if isinstance(known, KnownTeachers) else None
    # No pausing of the garbage collector here: the consumer (apply) runs between the yields.
    for items, hashes in _replay_chunks(plan._source, need_hashes, raw_get, chunk_size):
        yield from _replay_items(plan, items, hashes, held, need_hashes, raw_get)

def _replay_chunks(
    src: Iterable[RosterRow | InvalidRow], need_hashes: bool, raw_get: Any, chunk_size: int
) -> Iterator[tuple[list[RosterRow | InvalidRow], list[str | None]]]:
    validator = getattr(src, "validator", None)
    table = getattr(src, "table", None)
    if validator is None or table is None:
        yield from _chunked(src, need_hashes, chunk_size)
        return
    for raw in table.chunks(chunk_size):
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
    plan: RosterPlan, items: list[RosterRow | InvalidRow], hashes: list[str | None], held: bool, need_hashes: bool,
    raw_get: Any,
) -> Iterator[TeacherAction]:
    known = plan._known
    dups = plan._duplicates
    unchanged, suspend = ActionKind.UNCHANGED, ActionKind.SUSPEND
    for item, h in zip(items, hashes, strict=True):
        # an InvalidRow is skipped (`type is`, not isinstance: this loop runs once per roster row)
        if type(item) is not RosterRow or item.id_number in dups:
            continue
        previous: TeacherState | None = None
        levels: tuple[str, ...] = ()
        if not need_hashes:
            kind, levels = classify(item, None)
        elif raw_get is not None:
            st = raw_get(item.id_number, "")
            if not st:
                kind, levels = classify(item, None)  # nothing stored for this teacher
            else:
                previous = KnownTeachers._state(st)
                kind, levels = classify(item, previous, h)
        else:
            previous = known.get(item.id_number)
            kind, levels = classify(item, previous, h)
        if kind is unchanged or (held and kind is suspend):
            continue
        yield TeacherAction(kind, item.id_number, item, previous, levels)
