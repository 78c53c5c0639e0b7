"""Hostile tests of the speed work since 1e1da32: fast paths against their references on adversarial input."""

from __future__ import annotations

import csv
import gc
import io
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import id_number

from creditbridge.readers.exports import read_roster
from creditbridge.records.cells import CSV_FORMULA_STARTS, csv_row
from creditbridge.sync import roster as roster_module
from creditbridge.sync.outcome import PlanLine, SyncOutcome
from creditbridge.sync.plan_kernel import _gc_paused, plan_roster
from creditbridge.sync.records import ActionKind, InvalidRow, RosterRow, TeacherState
from creditbridge.sync.report import PLAN_COLUMNS, _save_plan_csv
from creditbridge.sync.roster_plan import KnownTeachers, RosterPlan, TeacherAction, plan_roster_reference
from creditbridge.sync.validation import _ROSTER_MAX, RosterValidator, ValidatedRoster

HEADER = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师", "任职状态",
          "手机号", "邮箱", "教师编号"]


def good_row(n: int = 1) -> list[str]:
    return [id_number(n), f"教师{n}", "370102001", "历下一中", "历下区", "济南市", "初中", "数学", "否", "在职",
            "13800000000", "", f"T{n}"]


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> RosterValidator:
    return RosterValidator(read_roster(write(tmp_path_factory.mktemp("v") / "r.csv", [good_row()])))


WS = ["", " ", "\u3000", "\u00a0", "\u2028", "\x1c", "\x1d", "\x1e", "\x1f", "\t", "\u200b", "\ufeff", "\x85"]
ID_BASE = id_number(7)
X_ID = next(id_number(n) for n in range(1000) if id_number(n).endswith("X"))
FW = chr(ord(ID_BASE[3]) - ord("0") + ord("０"))
IDS = [ID_BASE, X_ID, X_ID[:17] + "x", X_ID[:17] + "Ｘ", ID_BASE[:3] + FW + ID_BASE[4:], ID_BASE[:17],
       ID_BASE + "1", "'" + ID_BASE, "\t" + ID_BASE, "'\t'" + ID_BASE, ID_BASE[:5] + "X" + ID_BASE[6:],
       X_ID[:16] + "XX", "", "370102198502300019", ID_BASE[:17] + "0" if ID_BASE[17] != "0" else ID_BASE[:17] + "1",
       "ß" + ID_BASE[2:], "ŉ" + ID_BASE[2:], "ﬀ" + ID_BASE[2:], ID_BASE.replace("1", "¹", 1),
       ID_BASE.replace("0", "٠", 1), ID_BASE[:17] + "\u0130"]


def cell(values: list[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, v, b: a + v + b, st.sampled_from(WS), st.sampled_from(values), st.sampled_from(WS))


LONG = {f: ["a" * n for n in (n - 1, n, n + 1)] for f, n in _ROSTER_MAX.items()}
COLS = [
    IDS,
    ["张三", "", "\u200b"] + LONG["name"],
    ["370102001", ""] + LONG["school_code"],
    ["历下一中", ""] + LONG["school_name"],
    ["历下区", "", "\x00"] + LONG["county"],
    ["济南市", ""] + LONG["city"],
    ["初中", "幼儿园", "高中", "小学", "学前", "Middle", "middle", "大学", "", "kindergarten"],
    ["数学", "", "无", "None", "none", "NONE", "-", "／", "物理", "科学", "maths", "Maths", "体育"],
    ["否", "是", "Y", "y", "N", "YES", "True", "1", "0", "√", "×", "也许", "", "乡村"],
    ["在职", "离职", "Active", "active", "LEFT", "1", "0", "在职 ", "退休", "", "借调", "INACTIVE"],
    ["13800000000", "", "+86 138-0000-0000", "１３８００", "²³⁴⁵⁶", "12", "abc"] + LONG["phone"],
    ["", "a@b.cn", "A@B.CN", "a b@c.d", "a@b"] + LONG["email"],
    ["", "T1"] + LONG["teacher_code"],
]


@st.composite
def raw_rows(draw: st.DrawFn) -> list[tuple[int, list[str]]]:
    out = []
    for r in range(draw(st.integers(1, 12))):
        cells = [draw(cell(values)) if draw(st.integers(0, 3)) else good_row(r)[i]
                 for i, values in enumerate(COLS)]
        out.append((r + 2, cells))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(raw_rows(), st.booleans())
def test_chunk_and_screen_agree_with_the_per_row_validator(validator: RosterValidator,
                                                             rows: list[tuple[int, list[str]]],
                                                             hashes: bool) -> None:
    reference = [validator(n, c) for n, c in rows]
    if not hashes:
        reference = [x if isinstance(x, InvalidRow) else x._replace(source_hash=None) for x in reference]
    items, source = validator.chunk(rows, hashes=hashes)
    assert items == reference
    assert source == [None if isinstance(x, InvalidRow) else x.source_hash for x in reference]
    screened = validator.screen(rows)
    if screened is not None:
        assert all(isinstance(x, RosterRow) for x in reference)
        assert screened == ([x.id_number for x in reference], [x.status for x in reference])


# --- the first-sync planner (fold_first_seen, the screen path) against plan_roster_reference -----------------


PLAN_IDS = [id_number(n) for n in range(6)] + ["'" + id_number(1), id_number(2).lower(), id_number(3)[:17], X_ID,
                                               X_ID[:17] + "x", X_ID[:17] + "Ｘ", "\u3000" + id_number(4),
                                               id_number(5) + "\x1f"]
STATUS_SPELLINGS = ["在职", "在职", "在职", "离职", "Active", "在职 ", "\u3000在职", "退休", "LEFT", "1", "0", "也许"]
RURAL_SPELLINGS = ["否", "否", "是", "Y", "n", " 否", "TRUE", "也许"]
STAGE_SUBJECT = [("初中", "数学"), ("初中", "数学"), ("幼儿园", ""), ("幼儿园", "无"), ("幼儿园", "None"),
                 ("幼儿园", "数学"), ("小学", "科学"), ("初中", "科学"), ("高中", "")]


@st.composite
def plan_rows(draw: st.DrawFn) -> list[list[str]]:
    rows = []
    for r in range(draw(st.integers(0, 40))):
        row = good_row(r)
        if draw(st.booleans()):  # a plain valid row, its ID number from a pool (some repeat)
            row[0] = id_number(draw(st.integers(0, 60)))
            row[9] = draw(st.sampled_from(["在职", "离职", "退休"]))
            rows.append(row)
            continue
        row[0] = draw(st.sampled_from(PLAN_IDS))
        row[6], row[7] = draw(st.sampled_from(STAGE_SUBJECT))
        row[8] = draw(st.sampled_from(RURAL_SPELLINGS))
        row[9] = draw(st.sampled_from(STATUS_SPELLINGS))
        if draw(st.integers(0, 9)) == 0:
            row[1] = draw(st.sampled_from(["", "\u3000", "\x1c", "a" * (_ROSTER_MAX["name"] + 1),
                                           "a" * _ROSTER_MAX["name"]]))
        if draw(st.integers(0, 14)) == 0:
            row = row[:draw(st.integers(1, 12))]  # shorter than the header
        rows.append(row)
    return rows


def first_sync_outcome(plan: RosterPlan, unhash: bool) -> tuple[object, ...]:
    def norm(a: TeacherAction) -> TeacherAction:
        if unhash and a.roster_row is not None:
            return TeacherAction(a.kind, a.id_number, a.roster_row._replace(source_hash=None), a.previous,
                                 a.transfer_levels)
        return a
    return (plan.as_json(), plan.errors, [norm(a) for a in plan.actions], plan.absent, plan.transfers_by_level,
            plan.known_active, plan.action_count)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(plan_rows(), st.sampled_from([0, 1, 3, 50_000]), st.sampled_from([0, 2, 5]), st.sampled_from([1, 3, 7, 256]),
       st.booleans(), st.sampled_from([0, 1, 1000]))
def test_first_sync_fast_paths_plan_as_the_reference(tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]],
                                                     cache_limit: int, head: int, size: int, list_only: bool,
                                                     max_errors: int) -> None:
    table = read_roster(write(tmp_path_factory.mktemp("p") / "r.csv", rows))
    options = {"programme": "sd-2022", "id_column": table.column("id_number"), "max_errors": max_errors}
    items = list(ValidatedRoster(table))
    reference = first_sync_outcome(plan_roster_reference(items, {}, **options), list_only)  # type: ignore[arg-type]
    plan = plan_roster(ValidatedRoster(table), KnownTeachers(), chunk_size=size, cache_limit=cache_limit, head=head,
                       list_only=list_only, **options)  # type: ignore[arg-type]
    got = first_sync_outcome(plan, list_only)
    assert [i for i, (x, y) in enumerate(zip(got, reference, strict=True)) if x != y] == []
    first = [a if not list_only or a.roster_row is None else TeacherAction(
        a.kind, a.id_number, a.roster_row._replace(source_hash=None), a.previous, a.transfer_levels)
        for a in plan.first_actions(head)]
    assert first == reference[2][:head]


# --- plan_line_column / plan_lines ---------------------------------------------------------------------------



NAMES = ["张三", "=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x", "#N/A", "#REF!", "a\x00b", "\ud800", "a\udfffb",
         "\ud83d\ude00", "é", "a\r\nb", '"q"', "", "'=x", "\u2028=x", "\ufeff=x", "=" * 5000]


def action(kind: ActionKind, n: int, name: str, row: bool = True, levels: tuple[str, ...] = ()) -> TeacherAction:
    r = RosterRow(n + 2, id_number(n), name, "370102001", "历下一中", "历下区", "济南市", "middle", "maths", False,
                  "active")
    prev = TeacherState("0" * 32, "x", "y", "z", "active") if kind is not ActionKind.CREATE else None
    return TeacherAction(kind, id_number(n), r if row else None, prev, levels)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(ActionKind)), st.sampled_from(NAMES), st.booleans(),
                          st.sampled_from([(), ("school",), ("school", "county", "city")])), max_size=30))
def test_plan_line_column_is_plan_line(spec: list[tuple[ActionKind, str, bool, tuple[str, ...]]]) -> None:
    actions = [action(k, i, name, row, levels) for i, (k, name, row, levels) in enumerate(spec)]
    assert roster_module.plan_line_column(actions) == [roster_module.plan_line(a) for a in actions]


def test_plan_lines_notes_the_limit_once_and_keeps_at_most_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roster_module, "PLAN_LINES_MAX", 5)
    for sizes in ([7], [3, 3], [2, 2, 2, 2], [6, 6, 6], [2, 4]):
        ctx = SimpleNamespace(outcome=SyncOutcome("roster", "f", "p"))
        n = 0
        for size in sizes:  # as the dry run calls it (once), and as apply_accounts calls it (per wave, while room)
            if len(ctx.outcome.plan) < roster_module.PLAN_LINES_MAX:
                roster_module.plan_lines(ctx, iter([action(ActionKind.CREATE, n + i, "x") for i in range(size)]))
            n += size
        assert len(ctx.outcome.plan) == 5, sizes
        assert ctx.outcome.notes == ["the plan lists the first 5 actions only"], sizes
    # Called again on a full sheet (apply calls it on every wave), the note is not repeated.
    ctx = SimpleNamespace(outcome=SyncOutcome("roster", "f", "p"))
    for n in range(3):
        roster_module.plan_lines(ctx, iter([action(ActionKind.CREATE, 6 * n + i, "x") for i in range(6)]))
    assert len(ctx.outcome.plan) == 5 and ctx.outcome.notes == ["the plan lists the first 5 actions only"]


def test_plan_lines_note_when_a_wave_ends_exactly_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the hostile review: apply_accounts called plan_lines only while the sheet had room, so a wave
    ending exactly at the limit (200,000 is a multiple of every default wave) left the note out."""
    monkeypatch.setattr(roster_module, "PLAN_LINES_MAX", 4)
    ctx = SimpleNamespace(outcome=SyncOutcome("roster", "f", "p"))
    waves = [[action(ActionKind.CREATE, 2 * w + i, "x") for i in range(2)] for w in range(3)]  # 6 actions
    for batch in waves:  # apply_accounts' loop
        roster_module.plan_lines(ctx, batch)
    assert len(ctx.outcome.plan) == 4
    assert ctx.outcome.notes == ["the plan lists the first 4 actions only"]


# --- the plan CSV: encoded once from memory --------------------------------------------------------------------

def _old_save_plan_csv(outcome: SyncOutcome, fh: io.BytesIO, w: object) -> None:
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow([w(f"sync.{k}") for k in PLAN_COLUMNS])  # type: ignore[operator]
    columns = [csv_row([getattr(p, name) for p in outcome.plan]) for name in PLAN_COLUMNS]
    writer.writerows(zip(*columns, strict=True))
    text.flush()
    text.detach()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=8), st.sampled_from([*NAMES, "moved: school"]),
                          st.sampled_from([None, 0, 7]), st.sampled_from(["planned", "=x", "done", "\x00"])),
                max_size=12))
def test_plan_csv_is_formula_safe_encodable_and_as_before(lines: list[tuple[str, str, int | None, str]]) -> None:
    from creditbridge import i18n
    w = i18n.words(i18n.DEFAULT_LANGUAGE)
    outcome = SyncOutcome("roster", "f", "p")
    outcome.plan = [PlanLine("create", row, "3701************03", name, detail, result)
                    for name, detail, row, result in lines]
    new, old = io.BytesIO(), io.BytesIO()
    _save_plan_csv(outcome, new, w)
    _old_save_plan_csv(outcome, old, w)
    assert new.getvalue() == old.getvalue()
    data = new.getvalue()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\xef\xbb\xbf") == 1 + sum(
        (n + d).count("\ufeff") for n, d, _, _ in lines)
    text = data.decode("utf-8-sig")
    assert "\x00" not in text
    read = list(csv.reader(io.StringIO(text, newline="")))
    assert len(read) == len(lines) + 1
    for cells in read[1:]:
        for c in cells:
            assert c[:1] not in CSV_FORMULA_STARTS, cells


# --- _gc_paused: freeze, then unfreeze ---------------------------------------------------------------------------

def test_gc_paused_nested_and_after_an_error_leaves_the_collector_on_and_nothing_frozen() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with _gc_paused():
        with _gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(ZeroDivisionError), _gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with _gc_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_gc_paused_in_threads_leaves_the_collector_on_and_nothing_frozen() -> None:
    barrier = threading.Barrier(4)

    def work() -> None:
        for _ in range(200):
            with _gc_paused():
                [object() for _ in range(50)]
        barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_gc_paused_keeps_what_the_host_froze() -> None:
    """Found by the hostile review: unfreezing also released what the host process froze (a pre-fork server
    keeping its pages shared)."""
    keep = [object() for _ in range(1000)]  # noqa: F841
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with _gc_paused():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


# --- findings in the validator -----------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", ["", "无"])
def test_a_stage_without_subjects_other_than_kindergarten(tmp_path: Path, subject: str) -> None:
    """Found by the hostile review: the column-wise check took "no subject" in every stage whose vocabulary has
    no subjects, the per-row check only in kindergarten (a rule file may narrow the vocabulary)."""
    from creditbridge.records.vocabulary import SUBJECTS
    v = RosterValidator(read_roster(write(tmp_path / "r.csv", [good_row()])), {**SUBJECTS, "high": {}})
    row = good_row()
    row[6], row[7] = "高中", subject
    reference = v(2, row)
    assert isinstance(reference, InvalidRow)
    assert v.chunk([(2, row)])[0] == [reference]
    assert v.screen([(2, row)]) is None


def test_screen_of_no_rows(validator: RosterValidator) -> None:
    assert validator.screen([]) == ([], [])  # as chunk([]) gives ([], [])
