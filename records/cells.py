"""Cells of the files people open in a spreadsheet program: text is written as text, never as a formula.

A teacher's name or a school's name comes from a roster, a Moodle profile or a webhook; written as it is, a
value such as `=HYPERLINK("http://x","y")` becomes a live formula when the file is opened (CSV/formula
injection). Every XLSX and CSV writer of creditbridge passes its rows through `xlsx_row` or `csv_row`.

- XLSX: openpyxl turns a str starting with "=" into a formula cell and a str such as "#N/A" into an error
  cell. Such values go into a cell whose type is forced to string, so the file keeps exactly the text the
  user typed (no added quote) and no program evaluates it.
- CSV: a CSV has no types, so OWASP's rule applies: a text starting with = + - @ TAB or CR gets a leading
  apostrophe, which spreadsheet programs show as "this is text". Numbers (int, float, Decimal) stay numbers.

defusedcsv was considered: it does not cover TAB and CR, and it also rewrites "|" inside the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES

if TYPE_CHECKING:  # openpyxl keeps the class in a private module: only the type checker needs it
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# OWASP "CSV Injection": the first characters that make a spreadsheet program read a cell as a formula.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ERROR_CODES = frozenset(ERROR_CODES)


def csv_text(value: Any) -> Any:
    """`value` as a CSV field that no spreadsheet program evaluates; anything but text is returned as is."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for csv.writer.writerow with every formula-looking text defused (see csv_text)."""
    return [csv_text(v) for v in values]


def xlsx_row(ws: WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    """A row for a write-only worksheet's append(): text openpyxl would store as a formula or an error value
    becomes a string cell holding the same text; everything else (numbers, dates, other text, prepared
    cells) is passed on unchanged, so the common case costs one test per value."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, str) and (v.startswith("=") or v in _XLSX_ERROR_CODES):
            cell = WriteOnlyCell(ws, value=v)
            cell.data_type = "s"  # after the assignment: assigning infers "f" (formula) or "e" (error)
            out.append(cell)
        else:
            out.append(v)
    return out
