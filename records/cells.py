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
- CSV: a CSV has no types, so OWASP's rule applies: a text starting with = + - @ TAB or CR gets a leading
  apostrophe, which spreadsheet programs show as "this is text". Numbers (int, float, Decimal) stay numbers.

defusedcsv was considered: it does not cover TAB and CR, and it also rewrites "|" inside the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE

if TYPE_CHECKING:  # openpyxl keeps the class in a private module: only the type checker needs it
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# OWASP "CSV Injection": the first characters that make a spreadsheet program read a cell as a formula.
CSV_FORMULA_STARTS = frozenset(("=", "+", "-", "@", "\t", "\r"))
_XLSX_ERROR_CODES = frozenset(ERROR_CODES)


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for csv.writer.writerow: a text starting with one of CSV_FORMULA_STARTS gets a leading
    apostrophe; anything else (numbers, None, other text) is passed on unchanged."""
    # One comprehension, no call per value: an import file has a million rows of 17 values.
    return ["'" + v if isinstance(v, str) and v[:1] in CSV_FORMULA_STARTS else v for v in values]


def xlsx_row(ws: WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    """A row for a write-only worksheet's append(): text openpyxl would store as a formula or an error value
    becomes a string cell holding the same text, control characters XLSX cannot hold are escaped; everything
    else (numbers, dates, other text, prepared cells) is passed on unchanged. str.isprintable (one C call)
    keeps the common case to a few tests per value; only text that fails it is searched for control
    characters."""
    return [_string_cell(ws, v)
            if isinstance(v, str) and (v[:1] == "=" or v in _XLSX_ERROR_CODES or not v.isprintable()) else v
            for v in values]


def _escape_control(match: re.Match[str]) -> str:
    return f"_x{ord(match.group(0)):04X}_"


def _string_cell(ws: WriteOnlyWorksheet, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub(_escape_control, text))
    cell.data_type = "s"  # after the assignment: assigning infers "f" (formula) or "e" (error)
    return cell
