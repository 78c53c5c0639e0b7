"""The fast roster planner (plan_kernel.plan_roster) gives the plan the readable one defines
(roster_plan.plan_roster_reference), on generated rosters and stores: duplicates, invalid rows, transfers at
each level, leavers, status changes, unchanged rows of a re-sync, delta and force, the mass-suspension guard
at its edges, few kept errors, few kept actions (the second pass over the file), chunks of 1, 17 and 256
rows."""

from __future__ import annotations

import csv
import gc
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditbridge.readers.exports import read_roster
from creditbridge.records.id_number import check_digit
from creditbridge.sync.plan import plan_roster as public_plan_roster
from creditbridge.sync.plan_kernel import _gc_paused, plan_roster
from creditbridge.sync.records import ActionKind, RosterRow, TeacherState
from creditbridge.sync.roster_plan import KnownTeachers, RosterPlan, plan_roster_reference
from creditbridge.sync.validation import RosterValidator, ValidatedRoster

HEADER = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师", "任职状态",
          "手机号", "邮箱", "教师编号"]
TEACHERS = 8
# (school code, school, county, city): other schools of a county, other counties of a city, other cities, and
# 市中区, a county name found in two cities
SCHOOLS = [("370102001", "历下一中", "历下区", "济南市"), ("370102002", "历下二中", "历下区", "济南市"),
           ("370112001", "历城一中", "历城区", "济南市"), ("370103001", "市中一中", "市中区", "济南市"),
           ("370402001", "枣庄一中", "市中区", "枣庄市"), ("370202001", "市南一中", "市南区", "青岛市")]
# "在职 " and "Active" are valid spellings whose text differs from "在职": a re-sync validates such rows
STATUSES = ["在职", "在职", "在职 ", "Active", "离职", "退休"]
PHONES = ["13800000000", "", "13900000000"]
# cells that make a row invalid; a bad ID number leaves the row without one (it cannot be a duplicate)
BREAKS = [(6, "大学"), (0, "123"), (1, ""), (8, "也许")]
CHUNKS = (1, 17, 256)


def ident(n: int) -> str:
    first17 = f"37010219850101{n:03d}"
    return first17 + check_digit(first17)


@st.composite
def cells(draw: st.DrawFn, teacher: int) -> list[str]:
    code, school, county, city = draw(st.sampled_from(SCHOOLS))
    return [ident(teacher), f"教师{teacher}", code, school, county, city, "初中", "数学", "否",
            draw(st.sampled_from(STATUSES)), draw(st.sampled_from(PHONES)), "", f"T{teacher}"]


@st.composite
def rosters(draw: st.DrawFn) -> tuple[list[list[str]], list[tuple[int, list[str] | None, str]]]:
    """(the file's rows of cells, the store: (teacher, cells it was stored from or None for an unknown
    hash, status))."""
    rows: list[list[str]] = []
    valid: list[list[str]] = []
    for _ in range(draw(st.integers(0, 24))):
        r = draw(cells(draw(st.integers(0, TEACHERS - 1))))
        if draw(st.integers(0, 9)) == 0:
            column, text = draw(st.sampled_from(BREAKS))
            r[column] = text
        else:
            valid.append(r)
        rows.append(r)
    store: list[tuple[int, list[str] | None, str]] = []
    for teacher in range(TEACHERS):
        how = draw(st.sampled_from(["absent", "as in the file", "as in the file", "other", "unknown hash"]))
        if how == "absent":
            continue
        listed = [r for r in valid if r[0] == ident(teacher)]  # a row stored was valid
        stored: list[str] | None
        if how == "as in the file" and listed:
            stored = list(listed[0])
        elif how == "unknown hash":
            stored = None
        else:
            stored = draw(cells(teacher))
        store.append((teacher, stored, draw(st.sampled_from(["active", "active", "suspended"]))))
    return rows, store


def write(folder: Path, rows: list[list[str]]) -> Path:
    path = folder / "roster.csv"
    with open(path, "w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def stored_teachers(validator: RosterValidator, store: list[tuple[int, list[str] | None, str]]) -> KnownTeachers:
    """What apply would have stored: each teacher's source hash, school, county and city of the row it was
    stored from."""
    known = KnownTeachers()
    for teacher, stored, status in store:
        row = validator(2, stored or [ident(teacher), "x", *SCHOOLS[0], "初中", "数学", "否", "在职", "", "", ""])
        assert isinstance(row, RosterRow)
        row_hash = validator.source_hash(stored) if stored is not None else "0" * 32
        known.add(ident(teacher), row_hash, row.school_code, row.county, row.city, status)
    return known


def outcome(plan: RosterPlan) -> tuple[object, ...]:
    return (plan.as_json(), plan.errors, list(plan.actions), plan.absent, plan.transfers_by_level,
            plan.known_active, plan.action_count)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rosters(), st.booleans(), st.booleans(), st.sampled_from([0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5, 1.0]),
       st.sampled_from([0, 1, 2, 1000]), st.sampled_from([0, 1, 3, 50_000]), st.sampled_from([0, 2, 5]))
def test_the_kernel_plans_as_the_reference(
    roster: tuple[list[list[str]], list[tuple[int, list[str] | None, str]]], delta: bool, force: bool,
    threshold: float, max_errors: int, cache_limit: int, head: int,
) -> None:
    rows, store = roster
    with tempfile.TemporaryDirectory() as folder:
        table = read_roster(write(Path(folder), rows))
        known = stored_teachers(RosterValidator(table), store)
        items = list(ValidatedRoster(table))
        options = {"programme": "sd-2022", "delta": delta, "force": force, "suspend_threshold": threshold,
                   "id_column": table.column("id_number"), "max_errors": max_errors}
        reference = outcome(plan_roster_reference(items, dict(known), **options))  # type: ignore[arg-type]
        # the file streamed (a re-sync compares the rows' text with the store before validating), a list of
        # validated rows against the compact store, and against a plain mapping
        sources: list[tuple[object, Mapping[str, TeacherState]]] = [
            (ValidatedRoster(table), known), (items, known), (items, dict(known))]
        for source, state in sources:
            for size in CHUNKS:
                plan = plan_roster(source, state, chunk_size=size, cache_limit=cache_limit,  # type: ignore[arg-type]
                                   head=head, **options)  # type: ignore[arg-type]
                got = outcome(plan)
                assert [i for i, (x, y) in enumerate(zip(got, reference, strict=True)) if x != y] == [], (
                    type(source).__name__, type(state).__name__, size, got, reference)
                assert plan.first_actions(head) == reference[2][:head]


def test_the_public_planner_is_the_kernel() -> None:
    assert public_plan_roster is plan_roster


def test_the_generated_cases_reach_every_kind_and_level() -> None:
    """The generator above is not idle: a fixed roster of its shapes gives every kind, every transfer level,
    invalid and duplicated rows and absent teachers."""
    a, b, c, d = (list(s) for s in SCHOOLS[:4])
    zao = list(SCHOOLS[4])

    def r(teacher: int, school: list[str], status: str = "在职", phone: str = "13800000000") -> list[str]:
        return [ident(teacher), f"教师{teacher}", *school, "初中", "数学", "否", status, phone, "", f"T{teacher}"]

    rows = [r(0, a), r(1, a, phone=""), r(2, b), r(3, c), r(4, zao), r(5, a, "离职"), r(6, a), r(7, a),
            r(7, a, phone=""), r(8, a)]
    rows[9][6] = "大学"
    stored = [(0, r(0, a), "active"), (1, r(1, a), "active"), (2, r(2, a), "active"), (3, r(3, a), "active"),
              (4, r(4, d), "active"), (5, r(5, a), "active"), (6, r(6, a), "suspended"), (9, r(9, a), "active"),
              (10, r(10, a), "active")]
    with tempfile.TemporaryDirectory() as folder:
        table = read_roster(write(Path(folder), rows))
        known = stored_teachers(RosterValidator(table), stored)
        plan = plan_roster_reference(list(ValidatedRoster(table)), known, programme="sd-2022", force=True)
        kernel = plan_roster(ValidatedRoster(table), known, programme="sd-2022", force=True, chunk_size=17)
    assert outcome(kernel) == outcome(plan)
    assert {k: v for k, v in plan.counts.items() if v} == {"unchanged": 1, "update": 1, "transfer": 3, "suspend": 3,
                                                           "reactivate": 1}
    assert plan.transfers_by_level == {"school": 1, "county": 1, "city": 1}
    assert [(e.row, e.column) for e in plan.errors] == [(9, "身份证号"), (10, "身份证号"), (11, "学段")]
    assert plan.absent == [ident(9), ident(10)]
    assert [a.kind for a in plan.actions][-2:] == [ActionKind.SUSPEND, ActionKind.SUSPEND]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rosters(), st.booleans(), st.sampled_from([0, 1, 3, 50_000]), st.sampled_from([0, 2, 7]))
def test_a_first_sync_past_the_kept_actions_plans_as_the_reference(
    roster: tuple[list[list[str]], list[tuple[int, list[str] | None, str]]], delta: bool, cache_limit: int,
    head: int,
) -> None:
    """Nothing stored: while actions are kept, a chunk of valid rows makes them column by column; past those
    kept, the chunks whose rows all pass validation's column-wise checks are counted from their ID numbers and
    statuses (RosterValidator.screen); the others (an invalid row, an ID number seen before or repeated) go the
    careful way. All give the reference's plan, whatever the limit on the actions kept."""
    rows, _ = roster
    with tempfile.TemporaryDirectory() as folder:
        table = read_roster(write(Path(folder), rows))
        items = list(ValidatedRoster(table))
        options = {"programme": "sd-2022", "delta": delta, "id_column": table.column("id_number")}
        reference = outcome(plan_roster_reference(items, {}, **options))  # type: ignore[arg-type]
        for size in CHUNKS:
            plan = plan_roster(ValidatedRoster(table), KnownTeachers(), chunk_size=size, cache_limit=cache_limit,
                               head=head, **options)  # type: ignore[arg-type]
            assert outcome(plan) == reference, (size, cache_limit, head)
            assert plan.first_actions(head) == reference[2][:head]


def test_the_screened_first_sync_path_is_taken_and_falls_back_on_a_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above is not vacuous: on a first sync past the kept actions, chunks of valid rows are screened
    and never made into RosterRows; a chunk with an ID number seen in an earlier chunk is validated whole."""
    rows = [[ident(n), f"教师{n}", *SCHOOLS[n % 6], "初中", "数学", "否", "离职" if n % 4 == 0 else "在职", "", "",
             ""] for n in range(40)]
    rows.append(list(rows[3]))  # row 43 repeats the ID number of row 5
    table = read_roster(write(tmp_path, rows))
    calls = {"screen": 0, "chunk": 0}
    for name in calls:
        original = getattr(RosterValidator, name)

        def spy(self: RosterValidator, *args: object, _name: str = name, _original: object = original,
                **kwargs: object) -> object:
            calls[_name] += 1
            return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(RosterValidator, name, spy)
    plan = plan_roster(ValidatedRoster(table), KnownTeachers(), programme="sd-2022", chunk_size=10, cache_limit=0)
    # 41 rows in chunks of 10: the first validated whole (no action was left out yet), the next four screened;
    # the last (row 43 repeats row 5's ID number) validated whole too.
    assert calls == {"screen": 4, "chunk": 2}
    items = list(ValidatedRoster(table))
    assert outcome(plan) == outcome(plan_roster_reference(items, {}, programme="sd-2022"))
    assert plan.counts["create"] == 30 - 1 and plan.counts["unchanged"] == 10 and len(plan.errors) == 2


def test_what_a_collector_pause_leaves_alive_goes_to_the_oldest_generation() -> None:
    """After _gc_paused, the containers made in the block are not young: the first young collections would
    otherwise scan a province's hundreds of thousands of them. A pause inside a pause leaves the collector off."""
    assert gc.isenabled()
    with _gc_paused():
        kept = [[n] for n in range(5000)]
        with _gc_paused():
            inner = [[n] for n in range(10)]
        assert not gc.isenabled()
    assert gc.isenabled()
    young = {id(o) for generation in (0, 1) for o in gc.get_objects(generation=generation)}
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert not any(id(k) in young for k in kept + inner)
    assert all(id(k) in oldest for k in kept + inner)
    assert gc.get_freeze_count() == 0
