"""Hostile review of the XLSX reader's pre-read checks (input_limits.check_xlsx), through the CLI in a
memory-capped child:
- a cell's text written in the sheet itself (an inline string, a formula's cached text) is held to a bound
  before python-calamine unpacks the sheet, as shared strings are. Before, a 400 KB workbook with one 400 MB
  inline string took the reader past 1 GB before the cell's length was refused;
- cell references written otherwise than the usual writers do (single quotes, spaces around '=', lower case,
  leading zeros, a namespace prefix), which python-calamine reads all the same, are measured too. Before, a
  5 KB workbook so written passed the scan and the process aborted asking for 526 GB."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
from cli_process import run_cli, sheet_processes
from sync_helpers import (
    CHILD_MEMORY_MB,
    HEADERS,
    XLSX_PATHS,
    Person,
    child_config,
    id_number,
)


def _workbook_with_sheet(tmp_path: Path, sheet_data: str) -> Path:
    wb = openpyxl.Workbook()
    wb.active.append(HEADERS)
    buf = io.BytesIO()
    wb.save(buf)
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             f'spreadsheetml/2006/main"><sheetData>{sheet_data}</sheetData></worksheet>').encode()
    path = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, sheet if info.filename == "xl/worksheets/sheet1.xml" else src.read(info))
    return path


def _row(n: int, cells: list[str], second: str | None = None) -> str:
    xml = [f'<c r="{chr(65 + i)}{n}" t="inlineStr"><is><t>{c}</t></is></c>' for i, c in enumerate(cells)]
    if second is not None:
        xml[1] = second
    return f'<row r="{n}">' + "".join(xml) + "</row>"


TEACHER = Person(id_number(1), "张三").cells()


@pytest.mark.parametrize("reader", list(XLSX_PATHS))
@pytest.mark.parametrize(("cell", "row"), [
    ('<c r="B3" t="inlineStr"><is><t>{}</t></is></c>', 3),
    ('<c r="B3" t="str"><f>A1</f><v>{}</v></c>', 3),
])
def test_a_huge_text_in_the_sheet_is_refused_before_it_is_read(tmp_path: Path, cell: str, row: int,
                                                               reader: str) -> None:
    # Built here and dropped before the CLI starts: a forked child's peak RSS counts the parent's pages.
    roster = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, TEACHER)
                                  + _row(3, TEACHER, cell.format("x" * (400 << 20))))
    assert roster.stat().st_size < 1_000_000
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB,
                  timeout=120)
    assert ran.code == 2, ran.output[-2000:]
    assert ran.stderr.startswith(f"error: roster.xlsx: xl/worksheets/sheet1.xml holds a text of more than 16 MB in "
                                 f"row {row}, far longer than limits.max_cell_chars = 10,000 characters"), ran.stderr
    assert ran.stdout == "" and "Traceback" not in ran.output
    assert sheet_processes(roster) == []
    if not XLSX_PATHS[reader]:
        # Refused from the XML before any cell is unpacked: the run's memory is the scan's, not the cell's. (In
        # the child process the unpacking runs beside the scan, within the child's own cap, until the scan
        # refuses the file: ru_maxrss is then the child's.)
        assert ran.max_rss_mb < 700, ran.max_rss_mb


def test_cells_at_the_limit_and_whitespace_between_tags_pass(tmp_path: Path) -> None:
    # 100 characters written as entities (&amp; is 5 bytes a character) stay within max_cell_chars = 100, and
    # indentation between tags is no cell whatever its length (here 20 MB, beyond the 16 MB the scan refuses).
    name = "&amp;" * 100
    sheet = _row(1, HEADERS) + " " * (20 << 20) + _row(2, [TEACHER[0], name, *TEACHER[2:]])
    roster = _workbook_with_sheet(tmp_path, sheet)
    config, env = child_config(tmp_path, "[limits]\nmax_cell_chars = 100\n")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 0, ran.output[-2000:]
    assert json.loads(ran.stdout)["created"] == 1
    # A cell over the limit but below the scan's bound: the reader's error, naming row and column.
    too_long = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, [TEACHER[0], "z" * 1001, *TEACHER[2:]]))
    for extra in XLSX_PATHS.values():
        config, env = child_config(tmp_path, f"[limits]\nmax_cell_chars = 100\n{extra}")
        ran = run_cli(config, "sync", "roster", str(too_long), "--dry-run", "--json", env=env,
                      memory_mb=CHILD_MEMORY_MB)
        assert ran.code == 2
        assert ran.stderr.startswith("error: roster.xlsx: row 2, column 姓名: a cell of 1,001 characters"), ran.stderr


FAR = [
    ("single quotes", "<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>", "1,048,576 rows × 16,384 columns"),
    ("spaces around =", '<row r="3"><c r = "ZZZ900000"><v>1</v></c></row>', "900,000 rows × 18,278 columns"),
    ("lower case", '<row r="3"><c r="zzz900000"><v>1</v></c></row>', "900,000 rows × 18,278 columns"),
    ("leading zeros", '<row r="3"><c r="ZZZ0900000"><v>1</v></c></row>', "900,000 rows × 18,278 columns"),
    ("a tab before r", '<row r="3"><c\tr="ZZZ900000"><v>1</v></c></row>', "900,000 rows × 18,278 columns"),
    ("no r after a far one", '<row r="900000"><c r="ZZZ900000"/><c/><c/></row>', "900,000 rows × 18,280 columns"),
]
SECOND_R = ['<row r="3"><c r="A3" r="ZZZ900000"><v>1</v></c></row>',
            '<row r="3"><c r="A3" s="1" foo=">" r="ZZZ900000"><v>1</v></c></row>',
            # N is beyond the 13 columns so far: the scan once raised its bound there and skipped the rest of the tag
            '<row r="3"><c r="N3" r="ZZZ900000"><v>1</v></c></row>']


@pytest.mark.parametrize("reader", list(XLSX_PATHS))
@pytest.mark.parametrize("far", SECOND_R, ids=["second r", "second r after a quoted >", "second r after a new column"])
def test_a_cell_with_a_second_reference_is_refused(tmp_path: Path, far: str, reader: str) -> None:
    roster = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, TEACHER) + far)
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 2, ran.output[-2000:]
    assert ran.stderr.startswith("error: roster.xlsx: xl/worksheets/sheet1.xml cannot be measured before it is read "
                                 "(not well-formed XML: Attribute r redefined"), ran.stderr


@pytest.mark.parametrize("reader", list(XLSX_PATHS))
@pytest.mark.parametrize(("case", "far", "spans"), FAR, ids=[c for c, _, _ in FAR])
def test_references_written_otherwise_are_measured(tmp_path: Path, case: str, far: str, spans: str,
                                                   reader: str) -> None:
    roster = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, TEACHER) + far)
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 2, (case, ran.output[-2000:])
    assert ran.stderr.startswith(f"error: roster.xlsx: xl/worksheets/sheet1.xml spans {spans} from A1"), ran.stderr
    assert sheet_processes(roster) == []


def test_a_prefixed_sheet_is_measured(tmp_path: Path) -> None:
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><x:worksheet xmlns:x="http://schemas.openxmlformats.org/'
             'spreadsheetml/2006/main"><x:sheetData><x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>a</x:t>'
             '</x:is></x:c></x:row><x:row r="900000"><x:c r="ZZZ900000"><x:v>1</x:v></x:c></x:row></x:sheetData>'
             "</x:worksheet>")
    roster = _workbook_with_sheet(tmp_path, "")
    data = roster.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(roster, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, sheet if info.filename == "xl/worksheets/sheet1.xml" else src.read(info))
    config, env = child_config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 2, ran.output[-2000:]
    assert ran.stderr.startswith("error: roster.xlsx: xl/worksheets/sheet1.xml spans 900,000 rows × 18,278 columns"), \
        ran.stderr


@pytest.mark.parametrize("reader", list(XLSX_PATHS))
def test_a_roster_written_otherwise_but_small_is_read_as_usual(tmp_path: Path, reader: str) -> None:
    """The same teacher, its cells written with single quotes and lower-case references: read, not refused."""
    cells = "".join(f"<c r='{chr(97 + i)}2' t='inlineStr'><is><t>{c}</t></is></c>" for i, c in enumerate(TEACHER))
    roster = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + f"<row r='2'>{cells}</row>")
    config, env = child_config(tmp_path, f"[limits]\n{XLSX_PATHS[reader]}")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=CHILD_MEMORY_MB)
    assert ran.code == 0, ran.output[-2000:]
    assert json.loads(ran.stdout)["created"] == 1
