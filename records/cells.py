"""Cells of the files people open in a spreadsheet program: text is written as text, never as a formula.

A teacher's name or a school's name comes from a roster, a Moodle profile or a webhook; written as it is, a
value such as `=HYPERLINK("http://x","y")` becomes a live formula when the file is opened (CSV/formula
injection). Every XLSX and CSV writer of creditbridge passes its rows through `xlsx_row` or `csv_row`.

- XLSX: openpyxl turns a str starting with "=" into a formula cell and a str such as "#N/A" into an error
  cell. Such values go into a cell whose type is forced to string, so the file keeps exactly the text the
  user typed (no added quote) and no program evaluates it.
- XLSX cannot hold most control characters (XML 1.0 forbids them; openpyxl raises IllegalCharacterError,
  which took down a whole report for one name holding a vertical tab). They are written the way Excel
  itself writes them, `_x000B_` (ECMA-376 ST_Xstring escaping), which Excel and WPS show as the character.
  openpyxl's ILLEGAL_CHARACTERS_RE covers only the C0 controls; XML 1.0 also forbids U+FFFE, U+FFFF (lxml
  refuses the whole file: "All strings must be XML compatible") and lone surrogates (which no UTF-8 file can
  hold at all), so those are escaped the same way (`_xFFFF_`, `_xD800_`).
- CSV: a CSV has no types, so OWASP's rule applies: a text starting with = + - @ TAB or CR gets a leading
  apostrophe, which spreadsheet programs show as "this is text"; so does a text that is an error value such as
  `#N/A` or `#REF!` (Excel reads those as errors, not text). A NUL (programs reading C strings cut the row
  there) and a lone surrogate (UTF-8 cannot encode it: the whole file would fail) are written `_x0000_`, the
  XLSX escape, so both files say the same. Numbers (int, float, Decimal) stay numbers.

defusedcsv was considered: it does not cover TAB and CR, and it also rewrites "|" inside the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE, Cell

if TYPE_CHECKING:  # openpyxl keeps the class in a private module: only the type checker needs it
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# OWASP "CSV Injection": the first characters that make a spreadsheet program read a cell as a formula.
CSV_FORMULA_STARTS = frozenset(("=", "+", "-", "@", "\t", "\r"))
_ERROR_CODES = frozenset(ERROR_CODES)
# What XML 1.0 (so XLSX) cannot hold: openpyxl's C0 controls, plus lone surrogates, U+FFFE and U+FFFF.
XLSX_UNWRITABLE_RE = re.compile(f"{ILLEGAL_CHARACTERS_RE.pattern}|[\ud800-\udfff\ufffe\uffff]")
# What a CSV cannot carry: NUL and lone surrogates. Other controls are legal CSV text (and TAB/LF are common).
CSV_UNWRITABLE_RE = re.compile("[\x00\ud800-\udfff]")


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for csv.writer.writerow: a text starting with one of CSV_FORMULA_STARTS, or that is an error value,
    gets a leading apostrophe; NUL and lone surrogates are escaped; anything else (numbers, None, other text)
    is passed on unchanged."""
    # One comprehension, no Python call for the common value: an import file has a million rows of 17 values.
    return [_csv_text(v)
            if isinstance(v, str) and (v[:1] in CSV_FORMULA_STARTS or v in _ERROR_CODES or not v.isprintable())
            else v for v in values]


def xlsx_row(ws: WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    """A row for a write-only worksheet's append(): text openpyxl would store as a formula or an error value
    becomes a string cell holding the same text, control characters XLSX cannot hold are escaped; everything
    else (numbers, dates, other text, prepared cells) is passed on unchanged. str.isprintable (one C call)
    keeps the common case to a few tests per value; only text that fails it (controls, surrogates, U+FFFE/F
    are all "not printable") is searched for characters to escape."""
    return [_string_cell(ws, v)
            if isinstance(v, str) and (v[:1] == "=" or v in _ERROR_CODES or not v.isprintable()) else v
            for v in values]


def _escape_control(match: re.Match[str]) -> str:
    return f"_x{ord(match.group(0)):04X}_"


def _csv_text(text: str) -> str:
    text = CSV_UNWRITABLE_RE.sub(_escape_control, text)
    return "'" + text if text[:1] in CSV_FORMULA_STARTS or text in _ERROR_CODES else text


def _string_cell(ws: WriteOnlyWorksheet, text: str) -> Cell:  # WriteOnlyCell is a function making a Cell
    cell = WriteOnlyCell(ws, value=XLSX_UNWRITABLE_RE.sub(_escape_control, text))
    cell.data_type = "s"  # after the assignment: assigning infers "f" (formula) or "e" (error)
    return cell
