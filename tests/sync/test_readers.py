"""Readers: encodings detected once per file, XLSX streaming, header mapping, missing columns, row numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from fixture_paths import fixture

from creditbridge.readers.exports import read_catalog, read_roster, read_topics
from creditbridge.readers.table import MissingColumnError, ReadError, detect_encoding

SAMPLES = fixture("samples")
SAMPLE_ROSTER = SAMPLES / "sd-2022" / "roster.csv"
SAMPLE_CATALOG = SAMPLES / "sd-2022" / "catalog.csv"


def _sample_rows() -> list[list[str]]:
    with open(SAMPLE_ROSTER, encoding="gb18030", newline="") as f:
        return list(csv.reader(f))


def _write(path: Path, rows: list[list[str]], encoding: str) -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_sample_roster_is_gb18030_and_read_with_spreadsheet_row_numbers() -> None:
    table = read_roster(SAMPLE_ROSTER)
    assert table.encoding == "gb18030"
    rows = list(table)
    assert [r for r, _ in rows] == list(range(2, 13))  # header is row 1
    first = dict(zip(table.positions, (rows[0][1][i] for i in table.positions.values()), strict=True))
    assert first["name"] == "教师01"
    assert first["city"] == "济南市"
    assert table.column("id_number") == "身份证号"


@pytest.mark.parametrize(("encoding", "detected"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                                    ("gb18030", "gb18030")])
def test_each_encoding_gives_the_same_rows(tmp_path: Path, encoding: str, detected: str) -> None:
    path = _write(tmp_path / "roster.csv", _sample_rows(), encoding)
    assert detect_encoding(path) == detected
    table = read_roster(path)
    assert table.encoding == detected
    assert list(table) == list(read_roster(SAMPLE_ROSTER))


def test_encoding_is_decided_from_the_start_and_a_later_foreign_row_is_a_clear_error(tmp_path: Path) -> None:
    rows = _sample_rows()
    path = tmp_path / "mixed.csv"
    with open(path, "wb") as f:
        # Past the first megabyte (the sample the encoding is decided on) the file turns GB18030.
        for i in range(12_000):
            f.write((",".join(rows[min(i, 1) + (i % 10 if i else 0)]) + "\r\n").encode("utf-8"))
        for r in rows[1:]:
            f.write((",".join(r) + "\r\n").encode("gb18030"))
    table = read_roster(path)
    assert table.encoding == "utf-8"
    with pytest.raises(ReadError, match="not valid utf-8"):
        list(table)


def test_xlsx_reads_like_csv_with_numbers_as_text_and_a_title_row(tmp_path: Path) -> None:
    rows = _sample_rows()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["山东省2022年教师名单"])  # a title above the header, as exports often have
    ws.append(rows[0])
    for r in rows[1:]:
        cells: list[object] = list(r)
        cells[2] = int(r[2])  # school code typed as a number
        ws.append(cells)
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    table = read_roster(path)
    assert table.format == "xlsx"
    assert table.header_row == 2
    got = list(table)
    assert [r for r, _ in got] == list(range(3, 14))
    assert [c[:10] for _, c in got] == [r[:10] for r in rows[1:]]
    # chunks give the same rows
    assert [x for chunk in table.chunks(4) for x in chunk] == got


def test_missing_required_header_is_named_with_the_file_before_any_row(tmp_path: Path) -> None:
    rows = [r[:7] + r[8:] for r in _sample_rows()]  # drop 学科
    path = _write(tmp_path / "export.csv", rows, "utf-8")
    with pytest.raises(MissingColumnError) as e:
        read_roster(path)
    assert "学科" in str(e.value)
    assert "export.csv" in str(e.value)
    assert e.value.headers == ["学科"]


def test_header_map_maps_another_exports_headers(tmp_path: Path) -> None:
    rows = _sample_rows()
    rows[0] = ["证件号码", "教师姓名", *rows[0][2:]]
    path = _write(tmp_path / "other.csv", rows, "gb18030")
    with pytest.raises(MissingColumnError, match="身份证号"):
        read_roster(path)
    table = read_roster(path, header_map={"证件号码": "身份证号", "教师姓名": "姓名"})
    assert table.column("id_number") == "证件号码"  # errors name the file's own header
    assert table.column("name") == "教师姓名"
    assert len(list(table)) == 11


def test_header_decorations_and_english_names_are_accepted(tmp_path: Path) -> None:
    rows = _sample_rows()
    rows[0] = ["*身份证号", " 姓名 ", "school_code", *rows[0][3:]]
    table = read_roster(_write(tmp_path / "r.csv", rows, "utf-8"))
    assert set(table.positions) >= {"id_number", "name", "school_code"}


def test_blank_and_short_rows(tmp_path: Path) -> None:
    rows = _sample_rows()[:4]
    rows.insert(2, [])
    rows.insert(3, [""] * 10)
    rows.append(rows[1][:9])  # a short row: the missing cells read as empty
    table = read_roster(_write(tmp_path / "r.csv", rows, "utf-8"))
    got = list(table)
    assert [r for r, _ in got] == [2, 5, 6, 7]
    assert got[-1][1][9] == ""
    assert [x for chunk in table.chunks(2) for x in chunk] == got


def test_catalog_csv_yaml_and_chinese_columns(tmp_path: Path) -> None:
    table = read_catalog(SAMPLE_CATALOG)
    assert table.encoding == "utf-8"
    assert len(list(table)) == 57
    yaml_path = tmp_path / "catalog.yaml"
    yaml_path.write_text(
        "courses:\n"
        "  - 课程编号: C-1\n    课程名称: 师德\n    类别: required\n    专题: ethics\n    学时: 2\n"
        "  - 课程编号: C-2\n    课程名称: 数学\n    类别: elective\n    学时: 1.5\n    学段: 初中\n    学科: 数学\n",
        encoding="utf-8")
    table = read_catalog(yaml_path)
    rows = list(table.dicts())
    assert [r for r, _ in rows] == [2, 7]  # the line each item starts on
    assert rows[1][1]["hours"] == "1.5"
    assert rows[1][1]["subject"] == "数学"
    assert table.column("code") == "课程编号"


def test_topics_and_unknown_files(tmp_path: Path) -> None:
    table = read_topics(SAMPLES / "sd-2022" / "topics.csv")
    assert next(table.dicts()) == (2, {"school": "370102001", "topic": "ethics"})
    pdf = tmp_path / "x.pdf"
    pdf.write_text("x")
    with pytest.raises(ReadError, match="unknown file type"):
        read_roster(pdf)
    with pytest.raises(ReadError, match="no such file"):
        read_roster(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ReadError, match="empty"):
        read_roster(empty)
