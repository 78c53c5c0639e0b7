"""The shared helpers of the files people open: cells that stay text (records.cells) and files written only
where asked, whole or not at all (records.outfiles). The flows' tests drive them through the CLI."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from creditbridge.records.cells import csv_row, xlsx_row
from creditbridge.records.outfiles import OutputFileError, write_file


def test_csv_row_prefixes_formula_text_and_keeps_numbers_and_plain_text(formula_texts: tuple[str, ...]) -> None:
    row = csv_row([*formula_texts, "王芳", "a=b", "", None, -1, 2.5, 0])
    assert row[:len(formula_texts)] == ["'" + t for t in formula_texts]
    assert row[len(formula_texts):] == ["王芳", "a=b", "", None, -1, 2.5, 0]
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow(row)
    back = next(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert back[:len(formula_texts)] == ["'" + t for t in formula_texts]  # \r inside a quoted field survives


def test_xlsx_row_keeps_the_exact_text_as_a_string_cell(tmp_path: Path, formula_texts: tuple[str, ...]) -> None:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    values = [*formula_texts, "#N/A", "王芳", -1, 2.5]
    ws.append(xlsx_row(ws, values))
    ws.append(xlsx_row(ws, ["=1+1", None, "=2+2"]))  # a string cell after an empty one
    wb.save(tmp_path / "t.xlsx")
    sheet = load_workbook(tmp_path / "t.xlsx").active
    first = [sheet.cell(1, col) for col in range(1, len(values) + 1)]
    assert [c.value for c in first] == values
    assert [c.data_type for c in first] == ["s"] * (len(values) - 2) + ["n", "n"]
    second = [sheet.cell(2, col) for col in range(1, 4)]
    assert [(c.value, c.data_type) for c in second] == [("=1+1", "s"), (None, "n"), ("=2+2", "s")]


def test_control_characters_are_written_the_way_excel_writes_them(tmp_path: Path) -> None:
    """XML cannot hold them and openpyxl refuses them; Excel writes and shows _xHHHH_ as the character."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    ws.append(xlsx_row(ws, ["王\x0b芳", "=a\x00b", "\x1b[31m", "a\tb\nc", 3]))
    wb.save(tmp_path / "t.xlsx")
    sheet = load_workbook(tmp_path / "t.xlsx").active
    assert [(sheet.cell(1, c).value, sheet.cell(1, c).data_type) for c in range(1, 6)] == [
        ("王_x000B_芳", "s"), ("=a_x0000_b", "s"), ("_x001B_[31m", "s"), ("a\tb\nc", "s"), (3, "n")]


def _writes(data: bytes) -> Callable[[BinaryIO], int]:
    return lambda fh: fh.write(data)


def test_write_file_replaces_a_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    path = write_file(out, "a.txt", _writes(b"one"))
    assert path == out / "a.txt" and path.read_bytes() == b"one"
    write_file(out, "a.txt", _writes(b"two"))
    assert path.read_bytes() == b"two" and os.listdir(out) == ["a.txt"]


def test_a_failing_writer_leaves_the_earlier_file_and_no_temporary(tmp_path: Path) -> None:
    write_file(tmp_path, "a.txt", _writes(b"earlier"))

    def half(fh: BinaryIO) -> None:
        fh.write(b"half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputFileError, match=r"a\.txt: cannot be written: No space left on device"):
        write_file(tmp_path, "a.txt", half)
    assert (tmp_path / "a.txt").read_bytes() == b"earlier" and os.listdir(tmp_path) == ["a.txt"]

    def bug(fh: BinaryIO) -> None:
        raise ValueError("not an OSError")

    with pytest.raises(ValueError, match="not an OSError"):
        write_file(tmp_path, "b.txt", bug)
    assert os.listdir(tmp_path) == ["a.txt"]


def test_a_symlink_under_the_final_name_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_bytes(b"keep me")
    (out / "a.txt").symlink_to(victim)
    (out / "b.txt").symlink_to(elsewhere / "created.txt")  # dangling: following it would create the file
    for name in ("a.txt", "b.txt"):
        with pytest.raises(OutputFileError, match=rf"out/{name}: is a symbolic link; refusing"):
            write_file(out, name, _writes(b"report"))
    assert victim.read_bytes() == b"keep me" and os.listdir(elsewhere) == ["victim.txt"]
    assert sorted(os.listdir(out)) == ["a.txt", "b.txt"]  # the links stay; no temporary is left


@pytest.mark.parametrize("name", ["", ".", "..", "../x.txt", "a/b.txt", "a\0b"])
def test_only_a_plain_file_name_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputFileError, match="not a plain file name"):
        write_file(tmp_path / "out", name, _writes(b"x"))
    assert not (tmp_path / "x.txt").exists()


def test_a_directory_under_the_final_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").mkdir()
    with pytest.raises(OutputFileError, match=r"a\.txt: is a directory"):
        write_file(tmp_path, "a.txt", _writes(b"x"))
    assert os.listdir(tmp_path) == ["a.txt"]


# Any text a name can hold in XLSX: no surrogates, none of the characters XML 1.0 forbids.
_XLSX_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="".join(
    map(chr, [*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF]))), min_size=1, max_size=30)
_TRIGGERED = st.builds(lambda start, rest: start + rest, st.sampled_from(["=", "+", "-", "@", "\t", "\r", "#N/A"]),
                       _XLSX_TEXT)
# Characters no XLSX can hold (attack report item 1), and what a CSV cannot carry (NUL, lone surrogates: item 12).
_UNWRITABLE = st.sampled_from(["\x00", "\x0b", "\x1f", "\ufffe", "\uffff", "\ud800", "\udbff", "\udc00", "\udfff"])
_ANY_TEXT = st.tuples(_UNWRITABLE, st.lists(st.one_of(_UNWRITABLE, _XLSX_TEXT), max_size=5)).map(
    lambda t: "".join(t[1][:1]) + t[0] + "".join(t[1][1:]))  # at least one character of _UNWRITABLE


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(_TRIGGERED, _XLSX_TEXT), min_size=1, max_size=40))
def test_any_text_comes_back_from_xlsx_exactly_and_as_text(texts: list[str]) -> None:
    buf = io.BytesIO()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    for t in texts:
        ws.append(xlsx_row(ws, [t, 1]))
    wb.save(buf)
    sheet = load_workbook(io.BytesIO(buf.getvalue())).active
    got = [(sheet.cell(r, 1).value, sheet.cell(r, 1).data_type) for r in range(1, len(texts) + 1)]
    assert got == [(t, "s") for t in texts]


@given(st.lists(st.one_of(_TRIGGERED, _XLSX_TEXT, st.integers(), st.floats(allow_nan=False), st.none())))
def test_no_csv_field_starts_a_formula(values: list[object]) -> None:
    row = csv_row(values)
    for before, after in zip(values, row, strict=True):
        if isinstance(before, str) and (before[:1] in ("=", "+", "-", "@", "\t", "\r") or before == "#N/A"):
            assert after == "'" + before
        else:
            assert after is before  # numbers stay numbers, other text stays as it is


@settings(max_examples=50, deadline=None)
@given(st.lists(_ANY_TEXT, min_size=1, max_size=10))
def test_any_text_at_all_is_written_with_what_the_file_cannot_hold_escaped(texts: list[str]) -> None:
    """XLSX: XML 1.0's forbidden characters (C0 controls, U+FFFE, U+FFFF, lone surrogates) as _xHHHH_; CSV: NUL
    and lone surrogates the same way; both files are written whole."""
    buf = io.BytesIO()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    for t in texts:
        ws.append(xlsx_row(ws, [t]))
    wb.save(buf)
    sheet = load_workbook(io.BytesIO(buf.getvalue())).active
    for r, t in enumerate(texts, start=1):
        got = sheet.cell(r, 1).value
        assert sheet.cell(r, 1).data_type == "s" and "_x" in got
        for ch in set(t):
            if ord(ch) in (*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF) or 0xD800 <= ord(ch) <= 0xDFFF:
                assert ch not in got and f"_x{ord(ch):04X}_" in got
    text = io.StringIO()
    csv.writer(text).writerows(csv_row([t]) for t in texts)
    written = text.getvalue().encode("utf-8")  # every field encodes: no lone surrogate is left
    assert b"\x00" not in written
    back = [r[0] for r in csv.reader(io.StringIO(written.decode("utf-8")))]
    for t, got in zip(texts, back, strict=True):
        expected = "".join(f"_x{ord(c):04X}_" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in t)
        assert got in (expected, "'" + expected)  # the apostrophe only before a formula start


def test_csv_error_values_become_text_like_formulas() -> None:
    """Excel reads #N/A, #REF!, ... in a CSV as error values (XLSX forces them to strings): attack report item 12."""
    assert csv_row(["#N/A", "#REF!", "#DIV/0!", "#NULL!", "#NAME?", "#NUM!", "#VALUE!", "#N/A!", "#1"]) == [
        "'#N/A", "'#REF!", "'#DIV/0!", "'#NULL!", "'#NAME?", "'#NUM!", "'#VALUE!", "#N/A!", "#1"]
    assert csv_row(["王\x00芳", "=\x00", "\ud800"]) == ["王_x0000_芳", "'=_x0000_", "_xD800_"]
