"""Issue #15, fast XLSX reading: XLSX inputs go through python-calamine (readers/xlsx.py). The same roster
as XLSX and CSV gives the same plan and the same errors through the real CLI; cell values read as openpyxl read
them; hostile and broken workbooks are refused with `error: ...` (exit 2) in a memory-capped child."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from cli_process import run_cli, sheet_processes
from openpyxl import load_workbook
from sync_helpers import (
    CHILD_MEMORY_MB,
    HEADERS,
    XLSX_PATHS,
    Person,
    child_config,
    id_number,
    people,
)

from creditbridge import i18n
from creditbridge.readers.cells import cell_text
from creditbridge.readers.exports import read_roster
from creditbridge.records.outfiles import OutputFileError
from creditbridge.settings.model import InputLimits
from creditbridge.sync.outcome import PlanLine, SyncOutcome
from creditbridge.sync.report import PLAN_SHEET_ROWS, plan_csv_path, write_report


def _roster_rows() -> list[list[object]]:
    """A title row, the header, good teachers and broken rows, an empty row: as a province exports them."""
    good = [p.cells() for p in people(5)]
    bad_check_digit = Person(id_number(7)[:-1] + ("0" if id_number(7)[-1] != "0" else "1"), "李四").cells()
    no_name = Person(id_number(8), "").cells()
    bad_stage = Person(id_number(9), "王五", stage="大学").cells()
    twice = Person(id_number(10), "赵六").cells()
    padded = [f"  {c} " for c in Person(id_number(11), "钱七").cells()]
    return [["山东省2022年教师名单"], HEADERS, *good, bad_check_digit, [], no_name, bad_stage, twice, twice, padded]


# How a workbook's texts are written, by who writes them: python-calamine reads each its own way.
WRITERS = {
    "openpyxl": "inline strings, non-ASCII as character references",
    "excel": "a shared-string table, as Excel and WPS save (XlsxWriter)",
    "streaming": "inline strings in UTF-8, as Java POI's streaming writer (XlsxWriter's constant_memory)",
}


def _write_pair(tmp_path: Path, writer: str = "openpyxl") -> tuple[Path, Path]:
    rows = _roster_rows()
    csv_path = tmp_path / "roster.csv"
    with csv_path.open("w", encoding="gb18030", newline="") as f:
        csv.writer(f).writerows(rows)
    typed = []
    for r in rows:
        cells = list(r)
        if len(cells) > 2 and str(cells[2]).isdigit():
            cells[2] = int(cells[2])  # school code typed as a number, as Excel keeps it
        typed.append(cells)
    xlsx_path = tmp_path / "roster.xlsx"
    if writer == "openpyxl":
        wb = openpyxl.Workbook()
        ws = wb.active
        for cells in typed:
            ws.append(cells)
        ws.row_dimensions[5].hidden = True  # a hidden row is still a row of the roster
        wb.save(xlsx_path)
        return csv_path, xlsx_path
    book = xlsxwriter.Workbook(str(xlsx_path), {"constant_memory": writer == "streaming"})
    sheet = book.add_worksheet()
    for n, cells in enumerate(typed):
        if n == 4:
            sheet.set_row(n, None, None, {"hidden": True})
        sheet.write_row(n, 0, cells)
    book.close()
    return csv_path, xlsx_path


def _plan_sheet(report: str) -> list[tuple[object, ...]]:
    sheet = i18n.words(i18n.DEFAULT_LANGUAGE)("sync.sheet.plan")  # the report's language: zh-CN by default
    return list(load_workbook(report, read_only=True)[sheet].iter_rows(values_only=True))


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("reader", list(XLSX_PATHS))
def test_the_same_roster_as_xlsx_and_csv_gives_identical_plans_and_errors(tmp_path: Path, reader: str,
                                                                          writer: str) -> None:
    csv_path, xlsx_path = _write_pair(tmp_path, writer)
    if writer != "openpyxl":  # the workbook is written the way its writer is known for
        with zipfile.ZipFile(xlsx_path) as z:
            assert ("xl/sharedStrings.xml" in z.namelist()) == (writer == "excel")
            assert "姓名".encode() in z.read("xl/worksheets/sheet1.xml") or writer == "excel"
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    docs = {}
    for path in (csv_path, xlsx_path):
        ran = run_cli(config, "sync", "roster", str(path), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
        assert ran.code == 0, ran.output
        docs[path.suffix] = json.loads(ran.stdout)
    csv_doc, xlsx_doc = docs[".csv"], docs[".xlsx"]
    assert csv_doc["created"] == 6  # 5 good ones and the padded one; the rest are errors
    assert {e["row"] for e in csv_doc["errors"]} == {8, 10, 11, 12, 13}
    assert [e for e in xlsx_doc["errors"]] == csv_doc["errors"]  # rows, columns, reasons
    for key in ("created", "updated", "transferred", "suspended", "unchanged", "errors_omitted"):
        assert xlsx_doc[key] == csv_doc[key], key
    assert _plan_sheet(xlsx_doc["report"]) == _plan_sheet(csv_doc["report"])


def test_cells_read_as_openpyxl_read_them(tmp_path: Path) -> None:
    """Row numbers with empty rows and columns before the data, numbers, dates, booleans, merged and hidden rows,
    formulas (no cached value: empty): the same texts as openpyxl's values_only through cell_text."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for col, h in enumerate(HEADERS, start=3):
        ws.cell(row=3, column=col, value=h)
    values: list[list[object]] = [
        [id_number(1), "张三", 370102001, "一中", "历下区", "济南市", "初中", "数学", True, "在职", 13800000000.0],
        [id_number(2), "李四", 370102001.0, "一中", "历下区", "济南市", "初中", 1.5, False, "在职",
         datetime(2024, 7, 11), date(2024, 7, 12), time(8, 30)],
        [110101199003074514, "=1+2", 3, "  一中 ", "历下区", "济南市", "初中", "数学", "否", "在职",
         datetime(2024, 7, 11, 9, 5, 7)],
    ]
    for r, row in enumerate(values, start=4):
        for c, v in enumerate(row, start=3):
            ws.cell(row=r, column=c, value=v)
    ws.merge_cells("F4:F5")
    ws.row_dimensions[5].hidden = True
    ws.cell(row=8, column=3, value=id_number(3))  # after two empty rows
    path = tmp_path / "roster.xlsx"
    wb.save(path)

    table = read_roster(path)
    assert table.header_row == 3 and table.positions["id_number"] == 2
    got = list(table)
    ref = openpyxl.load_workbook(path, read_only=True, data_only=True)
    expected = [(n, [cell_text(v) for v in row]) for n, row in enumerate(ref.worksheets[0].iter_rows(
        values_only=True), start=1) if n > 3 and any(v is not None for v in row)]
    width = table.width
    assert got == [(n, cells + [""] * (width - len(cells))) for n, cells in expected]
    assert [n for n, _ in got] == [4, 5, 6, 8]
    assert got[0][1][2] == id_number(1) and got[0][1][4] == "370102001" and got[0][1][12] == "13800000000"
    assert got[1][1][12:15] == ["2024-07-11 00:00:00", "2024-07-12 00:00:00", "08:30:00"]
    # An ID number typed as a number is a float in the file, its last digits lost: shown as such, then refused.
    assert got[2][1][2] == "1.101011990030745e+17"


def _hostile(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _real_workbook() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADERS)
    ws.append(Person(id_number(1), "张三").cells())
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rezip(data: bytes, change: dict[str, bytes | None]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    dst.writestr(info.filename, change[info.filename])  # type: ignore[arg-type]
                continue
            dst.writestr(info, src.read(info))
        for name, part in change.items():
            if part is not None and name not in src.namelist():
                dst.writestr(name, part)
    return out.getvalue()


def _sheet_with(cells: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main"><sheetData>{cells}</sheetData></worksheet>').encode()


CFB = bytes.fromhex("d0cf11e0a1b11ae1")  # an OLE2 container: an .xls, or an XLSX encrypted with a password

def _empty_workbook() -> bytes:
    buf = io.BytesIO()
    openpyxl.Workbook().save(buf)
    return buf.getvalue()


HOSTILE = {
    "empty sheet": (_empty_workbook, "roster.xlsx: the first sheet is empty (no header row)"),
    "truncated": (lambda: _real_workbook()[:3000], "roster.xlsx: cannot be opened as an XLSX workbook (no zip archive"),
    "csv renamed": (lambda: "身份证号,姓名\n".encode(), "roster.xlsx: cannot be opened as an XLSX workbook (no zip"),
    "xls or password-protected": (lambda: CFB + bytes(4088), "roster.xlsx: cannot be opened as an XLSX workbook (an "
                                  "OLE2 file: an .xls workbook renamed, or an XLSX protected with a password"),
    "sheet missing": (lambda: _rezip(_real_workbook(), {"xl/worksheets/sheet1.xml": None}),
                      "roster.xlsx: cannot be opened as an XLSX workbook"),
    "stray far cell": (lambda: _rezip(_real_workbook(), {"xl/worksheets/sheet1.xml": _sheet_with(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>身份证号</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')}),
        "roster.xlsx: xl/worksheets/sheet1.xml spans 1,048,576 rows × 16,384 columns from A1 to its last cell"),
    "far cell in a near row": (lambda: _rezip(_real_workbook(), {"xl/worksheets/sheet1.xml": _sheet_with(
        '<row r="1"><c r="A1"><v>1</v></c><c t="n" r="ZZ999999"><v>1</v></c></row>')}),
        "roster.xlsx: xl/worksheets/sheet1.xml spans 999,999 rows × 702 columns"),
    "cells without references": (lambda: _rezip(_real_workbook(), {"xl/worksheets/sheet1.xml": _sheet_with(
        '<row r="1000000">' + "<c><v>1</v></c>" * 40 + "</row>")}),
        "roster.xlsx: xl/worksheets/sheet1.xml spans 1,000,000 rows × 40 columns"),
}


@pytest.mark.parametrize("reader", list(XLSX_PATHS))
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_and_broken_workbooks_are_refused(tmp_path: Path, case: str, reader: str) -> None:
    """The same message either way; in the child process, the scan runs beside the unpacking, and its refusal
    ends the child (a stray far cell aborts it under its memory cap: the scan's message still wins)."""
    make, message = HOSTILE[case]
    bomb = _hostile(tmp_path, "roster.xlsx", make())
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    ran = run_cli(config, "sync", "roster", str(bomb), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB,
                  timeout=60)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith(f"error: {message}"), ran.stderr
    assert "Traceback" not in ran.output and ran.stdout == ""
    assert sheet_processes(bomb) == []


def test_a_zip_bomb_sheet_is_refused_by_its_unpacked_size(tmp_path: Path) -> None:
    sheet = _sheet_with('<row r="1"><c r="A1"><v>1</v></c></row>' + " " * (3 << 20))
    bomb = _hostile(tmp_path, "roster.xlsx", _rezip(_real_workbook(), {"xl/worksheets/sheet1.xml": sheet}))
    assert bomb.stat().st_size < 100_000
    config, env = child_config(tmp_path, "[limits]\nxlsx_uncompressed_mb = 2\n")
    ran = run_cli(config, "sync", "roster", str(bomb), "--dry-run", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith("error: roster.xlsx: the workbook unpacks to 3 MB, more than "
                                 "limits.xlsx_uncompressed_mb = 2 MB"), ran.stderr


def test_a_long_plan_goes_whole_into_a_csv_beside_the_report(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    with roster.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        for i in range(1, 1201):
            cells = Person(id_number(i, born=f"{1960 + i // 1000:04d}0101"), f"教师{i}").cells()
            if i == 7:
                cells[1] = '=HYPERLINK("http://x","y")'
            w.writerow(cells)
    config, env = child_config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 0, ran.output
    doc = json.loads(ran.stdout)
    report = Path(doc["report"])
    plan_csv = report.with_name(report.stem + "-plan.csv")
    assert plan_csv.read_bytes().startswith("\ufeff".encode())  # the byte order mark Excel and WPS need
    with plan_csv.open(encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    words = i18n.words(i18n.DEFAULT_LANGUAGE)  # the report's language: zh-CN unless report.language says otherwise
    assert lines[0] == [words(f"sync.{k}") for k in ("action", "row", "who", "name", "detail", "result")]
    assert len(lines) == 1 + doc["created"]
    assert lines[7][:2] == ["create", "8"] and lines[7][3] == "'=HYPERLINK(\"http://x\",\"y\")"  # formula-safe
    wb = load_workbook(report)
    summary = {r[0].value: r[1] for r in wb[words("sync.sheet.summary")].iter_rows()}
    assert summary[words("sync.plan_csv")].value == plan_csv.name
    assert summary[words("sync.plan_csv")].hyperlink.target == plan_csv.name
    plan = list(wb[words("sync.sheet.plan")].iter_rows(values_only=True))
    assert len(plan) == 1 + 1000 + 1 and plan_csv.name in plan[-1][3]


def test_a_report_that_cannot_be_written_leaves_no_plan_csv_behind(tmp_path: Path) -> None:
    """The workbook and its plan CSV come as a pair or not at all: a lone CSV names a workbook that is missing."""
    outcome = SyncOutcome(kind="roster", file="roster.csv", programme="sd-2022", dry_run=True,
                          plan=[PlanLine("create", i + 2, f"1101**********{i:04d}")
                                for i in range(PLAN_SHEET_ROWS + 5)])
    report = tmp_path / "sync-000001-roster.xlsx"
    report.mkdir()  # the workbook's name is taken by a directory: the workbook cannot be written
    with pytest.raises(OutputFileError):
        write_report(outcome, report)
    assert sorted(p.name for p in tmp_path.iterdir()) == [report.name], "nothing beside the refused workbook"
    report.rmdir()
    written = write_report(outcome, report)
    assert written == report and plan_csv_path(report).is_file()  # and when it can, both are there


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("reader", list(XLSX_PATHS))
def test_a_workbook_s_cells_come_stripped_as_its_table_says(tmp_path: Path, reader: str, writer: str) -> None:
    """The roster validator skips its own strip for a table whose cells come stripped (Table.cells_stripped):
    true of every workbook cell, padded ones included, and not of the CSV, which keeps the padding."""
    csv_path, xlsx_path = _write_pair(tmp_path, writer)
    limits = InputLimits(xlsx_in_process_mb=0) if XLSX_PATHS[reader] else InputLimits()
    sheet = read_roster(xlsx_path, limits=limits)
    cells = [c for _, row in sheet for c in row]
    assert sheet.cells_stripped and all(c == c.strip() for c in cells) and "钱七" in cells
    text = read_roster(csv_path)
    assert not text.cells_stripped and any(c != c.strip() for _, row in text for c in row)
