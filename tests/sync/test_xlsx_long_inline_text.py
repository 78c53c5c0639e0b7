"""Hostile review: a cell's text written in the sheet itself (an inline string, a formula's cached text) is
held to limits.max_cell_chars before python-calamine unpacks the sheet, as shared strings are. Before, a 400 KB
workbook with one 400 MB inline string took the reader past 1 GB before the cell's length was refused."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
from cli_process import run_cli
from sync_helpers import HEADERS, Person, id_number

MEMORY_MB = 1024


def _config(tmp_path: Path, extra: str = "") -> tuple[Path, dict[str, str]]:
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(tmp_path / "reports").as_posix()}"\nusername_key = "k"\n{extra}',
                      encoding="utf-8")
    return config, {"CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}


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


@pytest.mark.parametrize(("cell", "row"), [
    ('<c r="B3" t="inlineStr"><is><t>{}</t></is></c>', 3),
    ('<c r="B3" t="str"><f>A1</f><v>{}</v></c>', 3),
])
def test_a_huge_text_in_the_sheet_is_refused_before_it_is_read(tmp_path: Path, cell: str, row: int) -> None:
    # Built here and dropped before the CLI starts: a forked child's peak RSS counts the parent's pages.
    roster = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, TEACHER)
                                  + _row(3, TEACHER, cell.format("x" * (400 << 20))))
    assert roster.stat().st_size < 1_000_000
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=MEMORY_MB,
                  timeout=120)
    assert ran.code == 2, ran.output[-2000:]
    assert ran.stderr.startswith(f"error: roster.xlsx: xl/worksheets/sheet1.xml holds a text of more than 16 MB in "
                                 f"row {row}, far longer than limits.max_cell_chars = 10,000 characters"), ran.stderr
    assert ran.stdout == "" and "Traceback" not in ran.output
    # Refused from the XML before any cell is unpacked: the run's memory is the scan's, not the cell's.
    assert ran.max_rss_mb < 700, ran.max_rss_mb


def test_cells_at_the_limit_and_whitespace_between_tags_pass(tmp_path: Path) -> None:
    # 100 characters written as entities (&amp; is 5 bytes a character) stay within max_cell_chars = 100, and
    # indentation between tags is no cell whatever its length (here 20 MB, beyond the 16 MB the scan refuses).
    name = "&amp;" * 100
    sheet = _row(1, HEADERS) + " " * (20 << 20) + _row(2, [TEACHER[0], name, *TEACHER[2:]])
    roster = _workbook_with_sheet(tmp_path, sheet)
    config, env = _config(tmp_path, "[limits]\nmax_cell_chars = 100\n")
    ran = run_cli(config, "sync", "roster", str(roster), "--dry-run", "--json", env=env, memory_mb=MEMORY_MB)
    assert ran.code == 0, ran.output[-2000:]
    assert json.loads(ran.stdout)["created"] == 1
    # A cell over the limit but below the scan's bound: the reader's error, naming row and column.
    too_long = _workbook_with_sheet(tmp_path, _row(1, HEADERS) + _row(2, [TEACHER[0], "z" * 1001, *TEACHER[2:]]))
    ran = run_cli(config, "sync", "roster", str(too_long), "--dry-run", "--json", env=env, memory_mb=MEMORY_MB)
    assert ran.code == 2
    assert ran.stderr.startswith("error: roster.xlsx: row 2, column 姓名: a cell of 1,001 characters"), ran.stderr
