"""Issue #15, the XLSX dry run: a large workbook is unpacked in a child process (readers/sheet_process.py) capped
in memory, beside the pre-read scan. The in-process reader is the reference: both give the same rows, the same
plans and the same errors. Passes may be abandoned, repeated and interleaved; a child that dies gives a clear
error; no child outlives its sheet (closed, collected, the parent interrupted)."""

from __future__ import annotations

import gc
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from cli_process import sheet_processes
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import HEADERS, Person, id_number

from creditbridge.input_limits import InputTooLarge
from creditbridge.readers import xlsx
from creditbridge.readers.cells import TEXT, cell_text, sheet_rows
from creditbridge.readers.exports import read_roster
from creditbridge.readers.sheet_process import RECORD, UNIT, pack, unpacked
from creditbridge.readers.xlsx import FirstSheet, XlsxReadError
from creditbridge.settings.model import InputLimits
from creditbridge.sync.plan import plan_roster_file

IN_PROCESS = InputLimits(max_cell_chars=100)
CHILD = InputLimits(max_cell_chars=100, xlsx_in_process_mb=0)
ROWS = 6000  # three batches of the child's and then some


def _teacher(i: int) -> list[object]:
    cells: list[object] = Person(id_number(i, born=f"{1960 + i // 1000:04d}0101"), f"教师{i}").cells()
    if i % 7 == 0:
        cells[2] = int(str(cells[2])) if str(cells[2]).isdigit() else cells[2]  # a school code typed as a number
    if i % 11 == 0:
        cells[1] = f"  {cells[1]}  "  # stripped by the reader
    if i % 13 == 0:
        cells[0] = cells[0][:-1] + "X" if cells[0][-1] != "X" else cells[0][:-1] + "0"  # a check digit error
    if i % 17 == 0:
        cells += ["", datetime(2024, 7, i % 28 + 1), date(2024, 1, 2), 1.5, True]  # beyond the header: dates etc.
    return cells


@pytest.fixture(scope="module")
def roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A title row, the header from column B (column A empty: put back by the reader), ROWS teachers with errors,
    numbers, padded texts, dates, and empty rows among them."""
    path = tmp_path_factory.mktemp("roster") / "roster.xlsx"
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append([None, "2024年教师名单"])
    ws.append([None, *HEADERS])
    for i in range(1, ROWS + 1):
        ws.append([None, *_teacher(i)])
        if i % 1000 == 0:
            ws.append([])
    wb.save(path)
    return path


def _rows(table: object) -> list[tuple[int, list[str]]]:
    return list(table)  # type: ignore[call-overload]


def test_both_paths_give_the_same_rows_and_plan(roster: Path) -> None:
    reference, child = read_roster(roster, limits=IN_PROCESS), read_roster(roster, limits=CHILD)
    assert child._sheet is not None and child._sheet._child is not None and reference._sheet._child is None
    assert (child.header_row, child.positions, child.width) == (reference.header_row, reference.positions,
                                                                reference.width)
    assert child.header_row == 2 and child.positions["id_number"] == 1  # column A empty, put back
    rows = _rows(reference)
    assert len(rows) == ROWS and rows[0][0] == 3 and rows[999][0] == 1002 and rows[1000][0] == 1004
    assert _rows(child) == rows
    assert list(FirstSheet(roster, CHILD).rows()) == list(FirstSheet(roster, IN_PROCESS).rows())
    plans = [plan_roster_file(roster, {}, programme="sd-2022", limits=limits) for limits in (IN_PROCESS, CHILD)]
    assert plans[0].counts == plans[1].counts and plans[0].counts["create"] > 0
    assert plans[0].errors == plans[1].errors and len(plans[0].errors) >= ROWS // 13 - 1
    assert list(plans[0].actions) == list(plans[1].actions)


def test_a_cell_too_long_is_refused_the_same_way(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(HEADERS)
    for i in range(1, 4001):
        cells = Person(id_number(i, born=f"{1960 + i // 1000:04d}0101"), f"教师{i}").cells()
        if i == 3000:
            cells[3] = "校" * 101
        wb.active.append(cells)
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    got = {}
    for name, limits in (("reference", IN_PROCESS), ("child", CHILD)):
        seen: list[int] = []
        with pytest.raises(InputTooLarge) as e:
            for row, _cells in read_roster(path, limits=limits):
                seen.append(row)
        got[name] = (seen, str(e.value))
    assert got["child"] == got["reference"]
    assert got["child"][0][-1] == 3000 and "row 3001, column 学校名称: a cell of 101 characters" in got["child"][1]
    for limits in (IN_PROCESS, CHILD):  # in chunks: the full chunks before the row, then the same error
        chunked: list[int] = []
        with pytest.raises(InputTooLarge, match="row 3001, column 学校名称"):
            for chunk in read_roster(path, limits=limits).chunks(256):
                chunked += [row for row, _ in chunk]
        assert chunked == list(range(2, 2 + 256 * (2999 // 256)))


def test_long_rows_of_short_cells_are_read(tmp_path: Path) -> None:
    """A batch's bound is its longest row's cells put together (cells.row_batches): a row longer than the cell limit
    whose every cell is within it makes the reader look into the batch, and read it all."""
    wb = openpyxl.Workbook()
    wb.active.append(HEADERS)
    for i in range(1, 3001):
        cells = Person(id_number(i, born=f"{1960 + i // 1000:04d}0101"), f"教师{i}").cells()
        if i == 2500:
            cells[3] = "校" * 100  # at the limit below; the row's cells together are well past it
        wb.active.append(cells)
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    got = [[row for row, _ in read_roster(path, limits=limits)]
           for limits in (IN_PROCESS, CHILD)]
    assert got[0] == got[1] == list(range(2, 3002))


def test_chunks_are_the_rows_cut_into_lists(roster: Path) -> None:
    rows = _rows(read_roster(roster, limits=IN_PROCESS))
    for limits in (IN_PROCESS, CHILD):
        table = read_roster(roster, limits=limits)
        for size in (1, 17, 256, 5000):
            chunks = list(table.chunks(size))
            assert [r for chunk in chunks for r in chunk] == rows, size
            assert all(len(chunk) == size for chunk in chunks[:-1]) and 0 < len(chunks[-1]) <= size


def test_passes_abandoned_repeated_and_interleaved(roster: Path) -> None:
    rows = _rows(read_roster(roster, limits=IN_PROCESS))
    table = read_roster(roster, limits=CHILD)  # its header search already abandoned one pass
    first = iter(table)
    assert [next(first) for _ in range(3)] == rows[:3]
    assert _rows(table) == rows  # a new pass while the first is paused: the child leaves the first for it
    assert _rows(table) == rows  # read twice, the same rows
    assert list(first) == rows[3:]  # the paused pass asks again from the row after its last
    pairs = list(zip(table, table, strict=True))  # two passes at once, superseding each other batch by batch
    assert [a for a, _ in pairs] == rows and [b for _, b in pairs] == rows
    for _ in range(3):  # a pass abandoned after one row each time, then one read to the end
        assert next(iter(table)) == rows[0]
    assert _rows(table) == rows
    sheet = table._sheet
    assert sheet is not None and sheet._child is not None
    sheet.close()
    assert sheet_processes(roster) == []


def test_a_child_killed_mid_pass_gives_a_clear_error(roster: Path) -> None:
    table = read_roster(roster, limits=CHILD)
    assert table._sheet is not None and table._sheet._child is not None
    pid = table._sheet._child._proc.pid
    rows = iter(table)
    next(rows)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(XlsxReadError, match=r"roster.xlsx: the process reading its first sheet ended before the "
                       r"sheet was read \(killed by signal 9\); .*limits.xlsx_max_cells"):
        for _ in rows:
            pass
    assert sheet_processes(roster) == []
    with pytest.raises(XlsxReadError, match="killed by signal 9"):
        _rows(table)  # and again, not a hang


def test_a_bomb_the_scan_missed_ends_only_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell in XFD1048576: the child asks for ~550 GB and dies under its cap; the parent says which limit."""
    wb = openpyxl.Workbook()
    wb.active.append(HEADERS)
    wb.active["XFD1048576"] = 1
    bomb = tmp_path / "roster.xlsx"
    wb.save(bomb)
    monkeypatch.setattr(xlsx, "check_xlsx", lambda path, limits: None)  # the parent's scan misses it
    with pytest.raises(InputTooLarge, match=r"roster.xlsx: reading its first sheet needed more than the [0-9,]+ MB "
                       r"of memory the reader may use \(from limits.xlsx_max_cells = 30,000,000 and "
                       r"limits.xlsx_uncompressed_mb = 2,048\)"):
        FirstSheet(bomb, CHILD)
    assert sheet_processes(bomb) == []


def test_the_scan_refuses_while_the_child_unpacks(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(HEADERS)
    wb.active["ZZ999999"] = 1
    bomb = tmp_path / "roster.xlsx"
    wb.save(bomb)
    with pytest.raises(InputTooLarge, match=r"roster.xlsx: xl/worksheets/sheet1.xml spans 999,999 rows × 702 "
                       "columns from A1 to its last cell"):
        FirstSheet(bomb, CHILD)
    assert sheet_processes(bomb) == []


def test_no_child_outlives_its_sheet(roster: Path) -> None:
    with FirstSheet(roster, CHILD) as sheet:
        assert next(sheet.rows())[0] == 1
        assert len(sheet_processes(roster)) == 1
    assert sheet_processes(roster) == []
    sheet = FirstSheet(roster, CHILD)
    assert len(sheet_processes(roster)) == 1
    del sheet
    gc.collect()
    assert sheet_processes(roster) == []


def test_an_interrupted_parent_leaves_no_child(roster: Path) -> None:
    """Ctrl-C reaches the parent and the child (one process group): the child ignores it, the parent's
    KeyboardInterrupt unwinds and ends the child on its way out."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from creditbridge.settings.model import InputLimits
        from creditbridge.readers.exports import read_roster
        table = read_roster(Path({str(roster)!r}), limits=InputLimits(xlsx_in_process_mb=0))
        print(table._sheet._child._proc.pid, flush=True)
        for n, (row, cells) in enumerate(table):
            if n == 10:
                os.kill(table._sheet._child._proc.pid, signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
        """)
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0 and "KeyboardInterrupt" in ran.stderr, ran.stderr[-2000:]
    pid = int(ran.stdout.split()[0])
    time.sleep(0.2)  # an orphan would still be running now; ours was killed and reaped before the parent ended
    assert sheet_processes(roster) == [] and not Path(f"/proc/{pid}").exists()


def test_a_batch_travels_packed_unless_a_cell_holds_a_separator() -> None:
    batch = [(3, ["a", "", "b "]), (5, ["", "d", ""]), (9, ["e"])]
    message = pack(1, batch)
    assert message[0] == "packed" and unpacked(message) == batch
    assert message[-1] == len("a\x1f\x1fb ")  # the longest line: no cell of the batch is longer
    for odd in (UNIT, RECORD):  # Excel writes any character (_x001F_): such a batch goes as lists of cells
        batch = [(3, ["a", f"b{odd}c"]), (4, ["d", "e"])]
        assert pack(1, batch) == ("rows", 1, batch, 5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.sampled_from("ab \t\u3000\x1e\x1f\x85校"), max_size=6), min_size=1,
                         max_size=4), min_size=1, max_size=6))
def test_a_packed_batch_is_the_batch_and_bounds_its_cells(rows: list[list[str]]) -> None:
    """Any cells, separators and Unicode whitespace among them: the parent gets the batch as it was, and the bound
    sent with it is no less than any cell's length."""
    batch = list(zip(range(2, 2 + len(rows)), rows, strict=True))
    message = pack(7, batch)
    got = unpacked(message) if message[0] == "packed" else message[2]
    assert got == batch and message[1] == 7
    assert message[-1] >= max(len(c) for _, cells in batch for c in cells)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.text(alphabet=st.sampled_from("a \t\u3000\x1f\x85\xa0校"), max_size=5),
                                   st.integers(-10**16, 10**16), st.floats(allow_nan=False), st.booleans(),
                                   st.dates(), st.datetimes()), max_size=6), min_size=1, max_size=8))
def test_text_rows_are_each_cell_s_text_stripped(rows: list[list[object]]) -> None:
    """cells.sheet_rows' TEXT: a row of texts goes through str.strip at C speed, any other row cell by cell; both
    give what cell_text gives each cell (the reference), empty rows left out, padded to the width."""

    class Sheet:
        start = (0, 0)

        def iter_rows(self) -> Iterator[list[object]]:
            return iter([list(r) for r in rows])

    got = list(sheet_rows(Sheet(), TEXT, 0, 4))
    expected = []
    for n, values in enumerate(rows, start=1):
        cells = [cell_text(v) for v in values]
        if any(cells):
            expected.append((n, cells + [""] * (4 - len(cells))))
    assert got == expected


def test_a_child_whose_parent_is_killed_exits(roster: Path) -> None:
    """SIGKILL leaves the parent no chance to end the child: the child sees its connection close and exits."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from creditbridge.settings.model import InputLimits
        from creditbridge.readers.exports import read_roster
        table = read_roster(Path({str(roster)!r}), limits=InputLimits(xlsx_in_process_mb=0))
        print(table._sheet._child._proc.pid, flush=True)
        time.sleep(600)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert sheet_processes(roster) == [pid]
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while sheet_processes(roster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sheet_processes(roster) == []


def test_the_child_imports_only_what_it_needs() -> None:
    """The sheet reader's interpreter pays for python-calamine and two small modules, not for the settings, the
    flows or their libraries."""
    script = ("import sys; from creditbridge.readers import sheet_process; "
              "print(' '.join(sorted(m for m in sys.modules if m.startswith(('creditbridge', 'pydantic', "
              "'sqlalchemy', 'lxml', 'yaml', 'openpyxl', 'click')))))")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["creditbridge", "creditbridge.readers", "creditbridge.readers.cells",
                                  "creditbridge.readers.sheet_process"]


def test_the_child_runs_under_its_address_space_cap(roster: Path) -> None:
    own, _ = resource.getrlimit(resource.RLIMIT_AS)
    expected = xlsx.address_cap(CHILD) if own == resource.RLIM_INFINITY else min(own, xlsx.address_cap(CHILD))
    assert xlsx.address_cap(InputLimits()) >> 20 == 4135  # the figure docs/sync.md gives for the defaults
    with FirstSheet(roster, CHILD) as sheet:
        assert sheet._child is not None
        limits = Path(f"/proc/{sheet._child._proc.pid}/limits").read_text().splitlines()
        soft = next(line for line in limits if line.startswith("Max address space")).split()[3]
        assert int(soft) == expected
