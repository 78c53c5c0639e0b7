"""Spreadsheet cell values as the readers give them: openpyxl's types (`openpyxl_value`) and the text of a cell
(`cell_text`), and a sheet's rows turned into either (`sheet_rows`).

A leaf of the standard library only: the sheet reader's child process (readers/sheet_process.py) imports it,
and it must not pay for the settings or the flows there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from itertools import islice
from operator import itemgetter
from typing import Any, Protocol

# sheet_rows' modes: python-calamine values typed as openpyxl typed them, or each cell's stripped text.
VALUES = "values"
TEXT = "text"
# TEXT: rows read the mixed way (not as texts only) after a row that held a value other than text.
_MIXED_ROWS = 64


class Sheet(Protocol):
    """What sheet_rows reads of python-calamine's CalamineSheet."""

    @property
    def start(self) -> tuple[int, int] | None: ...

    def iter_rows(self) -> Iterator[list[Any]]: ...


def openpyxl_value(v: Any) -> Any:
    """A python-calamine value as openpyxl's read-only reader typed it (see readers/xlsx.py's docstring)."""
    if type(v) is float:
        return int(v) if v.is_integer() and abs(v) < 1e15 else v
    if type(v) is date:
        return datetime(v.year, v.month, v.day)
    return v


def cell_text(v: Any) -> str:
    """The text of one cell or YAML value, as the table readers (readers/table.py) compare and store it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, datetime):
        return str(v)
    if isinstance(v, date):  # python-calamine's date cell at midnight: the text openpyxl's datetime gave
        return f"{v.isoformat()} 00:00:00"
    if isinstance(v, float):
        # An 18-digit ID number typed as a number has already lost its last digits in Excel; "1.0" style
        # integers are rendered without the fraction so codes such as 370102001 survive.
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v).strip()


def sheet_rows(sheet: Sheet, mode: str, after: int = 0, width: int = 0) -> Iterator[tuple[int, list[Any]]]:
    """`(row number, cells)` of the rows below row `after`, the sheet's first row being row 1.

    VALUES: every row (empty ones as lists of ""), values typed as openpyxl typed them.
    TEXT (what readers/table.py's Table reads): each cell's text (stripped), empty rows left out, the row padded with ""
    to `width` cells.
    Either way the columns left of the first used one are put back (python-calamine's rows start at it), so a cell
    has the index openpyxl gave it."""
    start = sheet.start
    pad = [""] * start[1] if start else []
    texts_from = 0  # TEXT: the row from which a row is tried as texts only again
    for n, values in enumerate(sheet.iter_rows(), start=1):
        if n <= after:
            continue
        if pad:
            values = pad + values
        if mode == VALUES:
            # Most cells are text: only the others go through a Python call.
            yield n, [v if type(v) is str else openpyxl_value(v) for v in values]
            continue
        cells = None
        if n >= texts_from:
            try:  # a row of texts, most rows of a roster, at C speed; str.strip refuses any other value
                cells = list(map(str.strip, values))
            except TypeError:
                # A number, date or boolean: an export with such a column has one in every row, where trying
                # the texts' way first made each row cost both ways and an exception (1.8x the old per-row cost).
                # The next rows go the mixed way at once, the texts' way tried again after _MIXED_ROWS.
                texts_from = n + _MIXED_ROWS
        if cells is None:
            cells = [v.strip() if type(v) is str else cell_text(v) for v in values]
        if not any(cells):
            continue
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
        yield n, cells


def row_batches(rows: Iterator[tuple[int, list[Any]]], size: int,
                mode: str) -> Iterator[tuple[list[tuple[int, list[Any]]], int]]:
    """`rows` in lists of up to `size`, each with a length no cell of it exceeds (TEXT: the length of its longest
    row's cells put together; 0 for VALUES), so a reader holding cells to a length looks into a batch only when it
    may hold one too long. A row's joined length is one C call where measuring each cell took a Python generator
    per row: 1.5 s of CPU for a 1,000,000-row sheet, on the path the dry run waits for."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        longest = max(map(len, map("".join, map(itemgetter(1), batch)))) if mode == TEXT else 0
        yield batch, longest
