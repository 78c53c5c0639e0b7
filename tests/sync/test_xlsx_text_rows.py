"""readers/cells.sheet_rows' TEXT mode: a row of texts is stripped at C speed, and a sheet with a number, date or
boolean in every row (a phone or school code typed as a number, a rural flag as TRUE/FALSE) does not pay for
trying that first on every row: each row's values are gone through once, as before the fast path, not twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from creditbridge.readers.cells import TEXT, cell_text, sheet_rows


class _Row(list):  # type: ignore[type-arg]
    """A row of values that counts how often it is gone through."""

    walks = 0

    def __iter__(self) -> Iterator[Any]:
        _Row.walks += 1
        return super().__iter__()


class _Sheet:
    start = None

    def __init__(self, rows: list[list[Any]]) -> None:
        self._rows = rows

    def iter_rows(self) -> Iterator[list[Any]]:
        return iter(self._rows)


def _walks(rows: list[list[Any]]) -> tuple[int, list[tuple[int, list[str]]]]:
    _Row.walks = 0
    got = list(sheet_rows(_Sheet([_Row(r) for r in rows]), TEXT))
    return _Row.walks, got


def test_rows_with_a_number_each_are_gone_through_about_once() -> None:
    rows = [[f" 教师{i} ", 370102001.0, "初中", True, date(2024, 1, 2), datetime(2024, 1, 2, 3, 4)]
            for i in range(1000)]
    walks, got = _walks(rows)
    assert got == [(n, [c.strip() if isinstance(c, str) else cell_text(c) for c in r])
                   for n, r in enumerate(rows, start=1)]
    assert got[0][1] == ["教师0", "370102001", "初中", "1", "2024-01-02 00:00:00", "2024-01-02 03:04:00"]
    assert walks <= 1.1 * len(rows), walks  # the commit under review: 2 per row


def test_rows_of_texts_after_a_mixed_one_are_stripped_the_fast_way_again() -> None:
    rows = [["标题", 1.0]] + [[f" 教师{i}\u3000", "\xa0初中 "] for i in range(1000)]
    walks, got = _walks(rows)
    assert got[1][1] == ["教师0", "初中"] and got[0][1] == ["标题", "1"]
    assert walks <= len(rows) + 2
