"""readers/xlsx.read_ahead: `sync roster` starts unpacking a large workbook before it imports its flow, opens the
store and takes its run lock; the FirstSheet opened later adopts that reader, a reader nobody adopts ends with the
block, and a file replaced in between is read anew."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from cli_process import first_stderr_line, run_cli, sheet_processes, start_cli, started_sheet_processes
from sync_helpers import CHILD_MEMORY_MB, CHILD_PROCESS, HEADERS, Person, child_config, id_number

from creditbridge.readers import xlsx
from creditbridge.readers.xlsx import FirstSheet, read_ahead
from creditbridge.settings.model import InputLimits
from creditbridge.store.db import open_store
from creditbridge.store.locks import flow_lock

CHILD = InputLimits(xlsx_in_process_mb=0)


def _roster(path: Path, first: int, count: int) -> Path:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADERS)
    for i in range(first, first + count):
        ws.append(Person(id_number(i), f"教师{i}").cells())
    wb.save(path)
    return path


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths of the sheet readers started, in order."""
    paths: list[Path] = []
    real = xlsx._SheetProcess.__init__

    def spy(self: xlsx._SheetProcess, path: Path, limits: InputLimits) -> None:
        paths.append(path)
        real(self, path, limits)

    monkeypatch.setattr(xlsx._SheetProcess, "__init__", spy)
    return paths


def test_the_sheet_opened_in_the_block_adopts_the_reader_started_ahead(tmp_path: Path, started: list[Path]) -> None:
    path = _roster(tmp_path / "roster.xlsx", 1, 300)
    with FirstSheet(path, CHILD) as sheet:
        expected = list(sheet.rows())
    assert len(started) == 1
    with read_ahead(path, CHILD):
        assert len(started) == 2 and len(started_sheet_processes(path, 1)) == 1  # unpacking before anyone asked
        with FirstSheet(path, CHILD) as sheet:
            assert list(sheet.rows()) == expected
            assert len(sheet_processes(path)) == 1
        assert sheet_processes(path) == []
    assert len(started) == 2  # adopted: no second reader
    assert expected[1][1][0] == id_number(1)


def test_a_reader_nobody_adopted_ends_with_the_block(tmp_path: Path, started: list[Path]) -> None:
    path = _roster(tmp_path / "roster.xlsx", 1, 50)
    with pytest.raises(RuntimeError, match="the run lock is held"):
        with read_ahead(path, CHILD):
            assert len(started_sheet_processes(path, 1)) == 1
            raise RuntimeError("the run lock is held")
    assert sheet_processes(path) == []
    with read_ahead(path, CHILD):
        pass
    assert sheet_processes(path) == [] and len(started) == 2
    assert xlsx._ahead == []


def test_other_limits_or_another_path_start_their_own_reader(tmp_path: Path, started: list[Path]) -> None:
    path = _roster(tmp_path / "roster.xlsx", 1, 50)
    other = shutil.copy(path, tmp_path / "other.xlsx")
    with read_ahead(path, CHILD):
        with FirstSheet(Path(other), CHILD) as sheet:
            assert next(sheet.rows())[1][0] == HEADERS[0]
        with FirstSheet(path, InputLimits(xlsx_in_process_mb=0, max_cell_chars=101)) as sheet:
            assert next(sheet.rows())[1][0] == HEADERS[0]
        assert started == [path, Path(other), path]  # neither took the one started for `path` and CHILD
        assert len(sheet_processes(path)) == 1  # still waiting for its own sheet
    assert sheet_processes(path) == [] and xlsx._ahead == []


def test_a_file_replaced_after_the_read_ahead_is_read_anew(tmp_path: Path, started: list[Path]) -> None:
    path = _roster(tmp_path / "roster.xlsx", 1, 50)
    newer = _roster(tmp_path / "newer.xlsx", 500, 80)
    with read_ahead(path, CHILD):
        os.replace(newer, path)  # the export was saved again while the command started
        with FirstSheet(path, CHILD) as sheet:
            rows = list(sheet.rows())
    assert len(rows) == 81 and rows[1][1][0] == id_number(500)
    assert len(started) == 2 and sheet_processes(path) == []


def test_a_nested_read_ahead_of_the_same_file_starts_no_second_reader(tmp_path: Path, started: list[Path]) -> None:
    path = _roster(tmp_path / "roster.xlsx", 1, 50)
    with read_ahead(path, CHILD):
        with read_ahead(path, CHILD):
            assert len(started_sheet_processes(path, 1)) == 1  # one sheet unpacked once, not twice at once
            with FirstSheet(path, CHILD) as sheet:
                assert len(list(sheet.rows())) == 51
        assert xlsx._ahead == []
    assert len(started) == 1 and sheet_processes(path) == []


def _stored(path: Path) -> bytes:
    """The workbook's bytes with its parts stored, not compressed: two rosters of the same lengths of texts have
    the same size."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0)), zin.read(info.filename))
    return out.getvalue()


def test_a_file_rewritten_in_place_with_its_time_put_back_is_read_anew(tmp_path: Path) -> None:
    """Same inode, size, mode and modification time (`rsync --inplace -t`, `cp -p` onto it): not the file the
    reader started ahead unpacked, which its change time tells."""
    path = tmp_path / "roster.xlsx"
    path.write_bytes(_stored(_roster(tmp_path / "a.xlsx", 101, 50)))
    newer = _stored(_roster(tmp_path / "b.xlsx", 201, 50))
    assert len(newer) == path.stat().st_size
    with read_ahead(path, CHILD):
        assert xlsx._ahead[0][3]._conn.poll(30)  # the reader has unpacked the first file
        st = path.stat()
        with open(path, "r+b") as f:
            f.write(newer)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        with FirstSheet(path, CHILD) as sheet:
            rows = list(sheet.rows())
    assert rows[1][1][:2] == [id_number(201), "教师201"] and len(rows) == 51
    assert sheet_processes(path) == []


@pytest.mark.parametrize("case", ["small", "missing", "csv", "directory", "fifo"])
def test_nothing_is_started_for_what_is_read_in_process_or_not_at_all(tmp_path: Path, started: list[Path],
                                                                      case: str) -> None:
    path = tmp_path / "roster.xlsx"
    limits = CHILD
    if case == "small":
        _roster(path, 1, 5)
        limits = InputLimits()  # under limits.xlsx_in_process_mb: unpacked in this process
    elif case == "csv":
        path = tmp_path / "roster.csv"
        path.write_text(",".join(HEADERS) + "\n", encoding="utf-8")
    elif case == "directory":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    with read_ahead(path, limits):
        assert xlsx._ahead == []
    assert started == []


def test_sync_roster_reads_a_large_workbook_ahead_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Through the CLI: the plan is the one the workbook gives, and no reader outlives the command, whether the
    command ran or stopped before reading (a store it cannot open)."""
    path = _roster(tmp_path / "roster.xlsx", 1, 200)
    config, env = child_config(tmp_path, f"[limits]\n{CHILD_PROCESS}")
    ran = run_cli(config, "sync", "roster", str(path), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout)["created"] == 200
    assert sheet_processes(path) == []
    (tmp_path / "not-a-dir").write_text("", encoding="utf-8")
    broken = dict(env, CREDITBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'not-a-dir' / 'store.db'}")
    ran = run_cli(config, "sync", "roster", str(path), "--dry-run", env=broken, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 2 and ran.output.startswith("error: "), ran.output
    assert sheet_processes(path) == []


def test_a_run_waiting_for_the_lock_holds_no_reader_meanwhile(tmp_path: Path) -> None:
    """`sync roster --wait` behind another run: the reader started ahead (up to ~1.4 GB for a 1,000,000-row sheet,
    and a core while it unpacks) is ended before the wait, which may last hours, not kept for the run after it."""
    path = _roster(tmp_path / "roster.xlsx", 1, 200)
    config, env = child_config(tmp_path, f"[limits]\n{CHILD_PROCESS}")
    store = open_store(env["CREDITBRIDGE_DATABASE_URL"])
    try:
        with flow_lock(store, "sync", "sync catalog"):
            waiting = start_cli(config, "sync", "roster", str(path), "--json", "--wait", env=env)
            try:
                assert "waiting for another" in first_stderr_line(waiting)
                time.sleep(0.5)
                assert sheet_processes(path) == []
            finally:
                waiting.kill()
                waiting.wait(30)
    finally:
        store.engine.dispose()
    assert sheet_processes(path) == []


def test_a_file_replaced_by_a_small_one_ends_the_reader_at_once(tmp_path: Path, started: list[Path]) -> None:
    """The export saved again, now under limits.xlsx_in_process_mb: it is read in this process, and the reader
    started ahead for the large one ends then, not when the command does (after a whole apply, holding its
    memory)."""
    limits = InputLimits(xlsx_in_process_mb=1)
    path = _roster(tmp_path / "roster.xlsx", 1, 25000)
    assert path.stat().st_size >= 1 << 20
    small = _roster(tmp_path / "small.xlsx", 900, 3)
    with read_ahead(path, limits):
        assert len(started_sheet_processes(path, 1)) == 1
        os.replace(small, path)
        with FirstSheet(path, limits) as sheet:
            assert sheet_processes(path) == []
            rows = list(sheet.rows())
        assert xlsx._ahead == []
    assert [r[1][0] for r in rows[1:]] == [id_number(i) for i in range(900, 903)]
    assert len(started) == 1
