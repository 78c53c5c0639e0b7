"""A dry run's plan lines come from the planning pass (plan_roster's `head`, RosterPlan.first_actions), not from
a second pass over the roster: the same actions, in the same order, as iterating the plan (issue #15)."""

from __future__ import annotations

import dataclasses
import json
from itertools import islice
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.quickstart.province import write_province
from creditbridge.readers.exports import read_roster
from creditbridge.records.id_number import check_digit
from creditbridge.sync import plan as plan_module
from creditbridge.sync import roster as roster_module
from creditbridge.sync.plan import KnownTeachers, RosterPlan, TeacherAction, plan_roster, plan_roster_file
from creditbridge.sync.records import InvalidRow, RosterRow, RowError, TeacherState
from creditbridge.sync.validation import ValidatedRoster


def ident(n: int) -> str:
    first17 = f"370102198501{n // 1000 % 28 + 1:02d}{n % 1000:03d}"
    return first17 + check_digit(first17)


def row(n: int, line: int, **changes: object) -> RosterRow:
    r = RosterRow(line, ident(n), f"教师{n}", "S1", "一中", "历下区", "济南市", "middle", "maths", False, "active")
    return r._replace(**changes) if changes else r


def _rows_and_store() -> tuple[list[RosterRow | InvalidRow], KnownTeachers]:
    """Every kind of action, invalid rows, and duplicates whose second row comes late in the file (after a
    head's boundary), teachers absent from the file (suspended at the end of the actions)."""
    known = KnownTeachers()
    for n in range(30):
        r = row(n, 0)
        known.add(r.id_number, r.row_hash, r.school_code, r.county, r.city, "suspended" if n == 19 else "active")
    rows: list[RosterRow | InvalidRow] = []
    line = 2
    for n in range(60):
        if n in range(30) and n >= 25:
            continue  # 25..29: absent
        changes: dict[str, object] = {}
        if n < 5:
            changes = {"phone": "139"}  # update
        elif n < 10:
            changes = {"school_code": "S2"}  # transfer
        elif n < 13:
            changes = {"status": "left"}  # suspend
        rows.append(row(n, line, **changes))
        line += 1
        if n in (33, 41):
            rows.append(InvalidRow(line, [RowError(row=line, column="学段", reason="unknown stage")], ident(900 + n)))
            line += 1
    for n in (2, 31, 45):  # the same ID numbers again, late: none of their rows is planned
        rows.append(row(n, line))
        line += 1
    return rows, known


@pytest.mark.parametrize("threshold", [0.9, 0.05], ids=["suspensions", "suspensions-held"])
def test_first_actions_equal_the_actions_for_every_head_and_length(threshold: float) -> None:
    rows, known = _rows_and_store()
    reference = plan_roster(rows, known, programme="sd-2022", suspend_threshold=threshold, cache_limit=10**6)
    assert reference._cached is not None  # every action held: the reference does not depend on `head`
    expected = list(reference.actions)
    assert {a.kind.value for a in expected} >= ({"create", "update", "transfer"} if threshold < 0.5 else
                                                {"create", "update", "transfer", "suspend", "reactivate"})
    assert len(expected) == reference.action_count
    for head in range(len(rows) + 2):
        plan = plan_roster(rows, known, programme="sd-2022", suspend_threshold=threshold, cache_limit=3, head=head)
        assert plan.counts == reference.counts and plan.errors == reference.errors
        for n in range(len(expected) + 3):
            assert plan.first_actions(n) == expected[:n], (head, n)
        assert list(plan.actions) == expected


def _no_second_pass(self: RosterPlan, held: bool) -> list[TeacherAction]:
    raise AssertionError("the roster was read a second time")


def test_a_head_that_suffices_reads_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_province(tmp_path, teachers=400, seed=3, xlsx=False)
    reference = list(islice(plan_roster_file(files.roster, KnownTeachers(), programme="sd-2022").actions, 120))
    table = read_roster(files.roster)
    plan = plan_roster(ValidatedRoster(table), KnownTeachers(), programme="sd-2022", cache_limit=10, head=121)
    assert plan._cached is None and len(plan._head) == 121  # more actions than the head holds
    monkeypatch.setattr(RosterPlan, "_replay", _no_second_pass)
    assert plan.first_actions(120) == reference
    with pytest.raises(AssertionError, match="second time"):
        list(plan.actions)  # the whole plan is still read again (apply), which the patch refuses


def test_dry_run_plan_sheet_lists_the_first_actions_of_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                runner: CliRunner, sqlite_url: str) -> None:
    files = write_province(tmp_path / "province", teachers=300, seed=5, xlsx=False)
    limit = 40
    monkeypatch.setattr(roster_module, "PLAN_LINES_MAX", limit)
    known: dict[str, TeacherState] = {}
    expected = [roster_module.plan_line(a) for a in islice(plan_roster_file(files.roster, known,
                                                                             programme="sd-2022").actions, limit)]
    # Fewer actions held than the file has (a province's 50,000 at this size), and no second pass allowed.
    heads: list[tuple[int, bool]] = []

    def small_cache(*args: Any, **kwargs: Any) -> RosterPlan:
        heads.append((kwargs["head"], kwargs["list_only"]))
        return plan_roster(*args, cache_limit=10, **kwargs)

    monkeypatch.setattr(plan_module, "plan_roster", small_cache)
    monkeypatch.setattr(RosterPlan, "_replay", _no_second_pass)
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(tmp_path / "reports").as_posix()}"\n', encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(config), "sync", "roster", str(files.roster), "--dry-run", "--json"],
                           env={"CREDITBRIDGE_DATABASE_URL": sqlite_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # The planning pass kept the sheet's lines (and one more), no more, and hashed none of them (list_only).
    assert heads == [(limit + 1, True)]
    doc = json.loads(result.stdout)
    assert doc["created"] == 300 - files.leavers > limit
    book = openpyxl.load_workbook(doc["report"], read_only=True)
    summary = [v for r in book.worksheets[0].iter_rows(values_only=True) for v in r]
    assert f"the plan lists the first {limit} actions only" in summary
    lines = [list(r) for r in book.worksheets[2].iter_rows(min_row=2, values_only=True)]
    assert lines == [[p.action, p.row, p.who, p.name, p.detail or None, p.result] for p in expected]


def test_a_listed_plan_is_the_applied_plan_without_source_hashes(tmp_path: Path) -> None:
    """list_only (a dry run) leaves the kept rows unhashed and changes nothing else: the same counts, errors
    and actions, so the dry run's sheet shows what a real run would do."""
    files = write_province(tmp_path, teachers=400, seed=7, xlsx=False)
    plans = [plan_roster(ValidatedRoster(read_roster(files.roster)), KnownTeachers(), programme="sd-2022",
                         cache_limit=10, head=151, list_only=list_only) for list_only in (False, True)]
    applied, listed = (p.first_actions(150) for p in plans)
    assert all(a.roster_row and a.roster_row.source_hash for a in applied)
    assert all(a.roster_row and a.roster_row.source_hash is None for a in listed)
    assert [dataclasses.replace(a, roster_row=a.roster_row and a.roster_row._replace(source_hash=None))
            for a in applied] == listed
    assert plans[0].counts == plans[1].counts and plans[0].errors == plans[1].errors
    assert [roster_module.plan_line(a) for a in applied] == [roster_module.plan_line(a) for a in listed]


def _first_sync_rows() -> list[RosterRow | InvalidRow]:
    """A first sync's file: serving teachers and leavers, an invalid row, duplicates within a chunk and across
    chunks (_chunked's 256 rows), some of them leavers."""
    rows: list[RosterRow | InvalidRow] = []
    for n in range(1300):
        rows.append(row(n, n + 2, status="left" if n % 7 == 0 else "active"))
    rows[300] = InvalidRow(302, [RowError(row=302, column="学段", reason="unknown stage")], ident(300))
    rows += [row(n, 1302 + i) for i, n in enumerate((5, 7, 250, 600, 300, 700, 1001, 1281))]
    rows[20] = row(21, 22)  # 21 twice in one chunk
    return rows


def test_first_sync_kernel_plans_as_the_row_by_row_classification() -> None:
    rows = _first_sync_rows()
    reference = plan_roster(rows, KnownTeachers(), programme="sd-2022", cache_limit=10**6)  # every row classified
    assert reference._cached is not None
    assert reference.counts["create"] > 0 and reference.counts["unchanged"] > 0
    assert sum(1 for e in reference.errors if "rows" in e.reason) == 18
    for cache_limit in (0, 1, 3, 255, 600):
        plan = plan_roster(rows, KnownTeachers(), programme="sd-2022", cache_limit=cache_limit)
        assert plan._cached is None  # rows past the limit went through the kernel
        assert plan.counts == reference.counts and plan.errors == reference.errors, cache_limit
        assert plan._duplicates == reference._duplicates
        assert list(plan.actions) == list(reference.actions)


def test_plan_lines_column_by_column_are_the_lines_one_by_one(tmp_path: Path) -> None:
    """plan_line_column, the fast path of a province's plan sheet, gives plan_line's lines: for a first sync's
    creates (column by column) and for every other kind of action (line by line)."""
    rows, known = _rows_and_store()
    every_kind = list(plan_roster(rows, known, programme="sd-2022", force=True).actions)
    assert {a.kind.value for a in every_kind} >= {"create", "update", "transfer", "suspend", "reactivate"}
    files = write_province(tmp_path, teachers=300, seed=2, xlsx=False)
    creates = list(plan_roster_file(files.roster, KnownTeachers(), programme="sd-2022").actions)
    assert {a.kind.value for a in creates} == {"create"}
    for actions in (every_kind, creates, creates[:1], [], creates[:5] + every_kind[-3:]):
        assert roster_module.plan_line_column(actions) == [roster_module.plan_line(a) for a in actions]
