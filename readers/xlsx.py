"""Reading the first sheet of an outside XLSX file (roster, catalog, topics, `intake import`): python-calamine.

python-calamine (Rust calamine) reads a 1,000,000-row roster many times faster than openpyxl's read-only mode,
which is why it reads every XLSX input (openpyxl still writes our files). What it does, and how this module
makes it safe and gives the values openpyxl gave, so the validation and the row numbers stay the same:

- Memory: python-calamine 0.9 has no lazy row reader. Opening a sheet unpacks the cells of its used area
  (the rectangle from its first to its last cell) into a compact Rust array; `iter_rows` then turns one row
  at a time into Python values, so Python objects stay bounded and the Rust array costs about
  `BYTES_PER_CELL` per cell of the rectangle. The rectangle is allocated whole (a sheet with a cell in A1
  and one in XFD1048576 asks for 550 GB and aborts the process), so `input_limits.check_xlsx` measures it
  from the cell references before anything is opened, against `limits.xlsx_max_cells`; the unpacked size
  (zip bombs) and each shared string are checked there as well.
- Row numbers: `iter_rows` starts at row 1 (empty rows above the data come as empty rows) but at the first
  used column; the columns left of it are put back, so a cell has the index openpyxl gave it.
- Values, as openpyxl's read-only `values_only` gave them: a date cell at midnight comes as a `date` from
  calamine and is given back as a `datetime` (openpyxl's type); a whole number as the int openpyxl read
  from `<v>3</v>`, for numbers below 10^15 (beyond that a float, as Excel holds it: an ID number typed as a
  number has lost its last digits). Empty cells are "" (openpyxl: None). A cached error value of a formula
  (`#N/A`) comes as "" from python-calamine, where openpyxl gave the text "#N/A".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, WorksheetNotFound, XmlError, ZipError

from creditbridge import CreditbridgeError
from creditbridge.input_limits import check_xlsx
from creditbridge.settings.model import InputLimits

# The first bytes of an OLE2 container: an .xls workbook, or an XLSX encrypted with a password (ECMA-376 part 2).
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")
# Size of one cell of the Rust array python-calamine unpacks a sheet into (its Data enum), measured.
BYTES_PER_CELL = 32


class XlsxReadError(CreditbridgeError):
    """The file is not a workbook python-calamine can read (renamed, truncated, encrypted, no sheet)."""


def _reason(e: Exception) -> str:
    if isinstance(e, PasswordError):
        return "it is password-protected; save it without a password"
    if isinstance(e, WorksheetNotFound):
        return "its first sheet is missing from the file"
    if isinstance(e, ZipError):
        return "no zip archive, or a broken one: an .xls or a CSV renamed .xlsx, or a truncated copy?"
    if isinstance(e, XmlError):
        return "a part of it is not well-formed XML: a damaged file?"
    # calamine's own message may quote the file's content; its type says enough.
    return type(e).__name__


class FirstSheet:
    """The first sheet of a workbook, unpacked once (limits checked first); `rows()` may be called again and
    again without reading the file again (a plan's second pass over a roster)."""

    def __init__(self, path: Path, limits: InputLimits) -> None:
        check_xlsx(path, limits)
        try:
            with open(path, "rb") as f:
                if f.read(len(_OLE2)) == _OLE2:
                    raise XlsxReadError(f"{path.name}: cannot be opened as an XLSX workbook (an OLE2 file: an .xls "
                                        "workbook renamed, or an XLSX protected with a password; save it as an XLSX "
                                        "without a password)")
            with CalamineWorkbook.from_path(path) as wb:
                if not wb.sheet_names:
                    raise XlsxReadError(f"{path.name}: the workbook has no sheet")
                self._sheet = wb.get_sheet_by_index(0)
        except CalamineError as e:
            raise XlsxReadError(f"{path.name}: cannot be opened as an XLSX workbook ({_reason(e)})") from None
        except OSError as e:
            raise XlsxReadError(f"{path.name}: cannot be read: {e.strerror or type(e).__name__}") from None

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """`(row number, values)`, the first row of the sheet being row 1; empty rows come as lists of ""."""
        for n, values in self.raw_rows():
            # Most cells are text: only the others go through a Python call.
            yield n, [v if type(v) is str else openpyxl_value(v) for v in values]

    def raw_rows(self) -> Iterator[tuple[int, list[Any]]]:
        """As rows(), with python-calamine's own values (a midnight date as `date`, every number a float), for a
        reader that turns each value into text anyway (readers/table.py: one pass over the cells, not two)."""
        start = self._sheet.start
        pad = [""] * start[1] if start else []
        for n, values in enumerate(self._sheet.iter_rows(), start=1):
            yield n, pad + values if pad else values


def first_sheet_rows(path: Path, limits: InputLimits) -> Iterator[tuple[int, list[Any]]]:
    """The rows of the workbook's first sheet (FirstSheet.rows). The limits are checked and the sheet unpacked
    when this is called (XlsxReadError / InputTooLarge at once, before any row)."""
    return FirstSheet(path, limits).rows()


def openpyxl_value(v: Any) -> Any:
    """A python-calamine value as openpyxl's read-only reader typed it (see the module's docstring)."""
    if type(v) is float:
        return int(v) if v.is_integer() and abs(v) < 1e15 else v
    if type(v) is date:
        return datetime(v.year, v.month, v.day)
    return v
