"""input_limits.sheet_extent, the scan that measures a worksheet part before python-calamine unpacks it, against
the real XML parse it falls back to (_exact_extent): on sheets of cells written every way python-calamine reads,
the scan either gives the exact rectangle or hands the part to the parse (_Unusual), never a smaller rectangle."""

from __future__ import annotations

import io
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from creditbridge import input_limits
from creditbridge.input_limits import (
    InputTooLarge,
    _check_strings,
    _exact_extent,
    _texts_within,
    _Unusual,
    sheet_extent,
)

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:x="urn:x"'
letters = st.text(string.ascii_uppercase, min_size=1, max_size=3)


@st.composite
def cells(draw: st.DrawFn, row: int) -> str:
    col = draw(letters)
    at = draw(st.sampled_from([row, row, draw(st.integers(1, 3_000_000))]))
    way = draw(st.sampled_from(["usual", "usual", "usual", "styled", "lower", "quote", "spaces", "zero", "no r",
                                "second r", "prefixed", "other attribute", "r not first", "tab"]))
    ref = f"{col}{at}"
    far = f"{draw(letters)}{draw(st.integers(1, 3_000_000))}"
    tag = {
        "usual": f'<c r="{ref}"',
        "styled": f'<c r="{ref}" s="3" t="s"',
        "lower": f'<c r="{ref.lower()}"',
        "quote": f"<c r='{ref}'",
        "spaces": f'<c r = "{ref}"',
        "zero": f'<c r="{col}0{at}"',
        "no r": "<c",
        "second r": f'<c r="{ref}" r="{far}"',
        "prefixed": f'<x:c r="{ref}"',
        "other attribute": f'<c r="{ref}" foo="1"',
        "r not first": f'<c t="n" r="{ref}"',
        "tab": f'<c\tr="{ref}"',
    }[way]
    end = "</x:c>" if way == "prefixed" else "</c>"
    return draw(st.sampled_from([tag + "/>", f"{tag}><v>1</v>{end}"]))


@st.composite
def sheets(draw: st.DrawFn) -> bytes:
    rows, n = [], draw(st.integers(1, 5))
    for _ in range(draw(st.integers(1, 6))):
        rows.append(f'<row r="{n}">' + "".join(draw(st.lists(cells(n), max_size=5))) + "</row>")
        n += draw(st.integers(1, 4))
    return f"<worksheet {NS}><sheetData>{''.join(rows)}</sheetData></worksheet>".encode()


@settings(max_examples=400, deadline=None)
@given(sheets(), st.sampled_from([16, 64, 1 << 22]))
def test_the_scan_gives_the_exact_rectangle_or_hands_the_part_to_the_parser(xml: bytes, chunk: int) -> None:
    try:
        exact: tuple[int, int] | None = _exact_extent(io.BytesIO(xml))
    except etree.XMLSyntaxError:  # a second r: XML forbids it, python-calamine reads it (the last one wins)
        exact = None
    was = input_limits._CHUNK
    input_limits._CHUNK = chunk  # small chunks: rows and giant rows cut at every place
    try:
        scanned = sheet_extent(io.BytesIO(xml))
    except _Unusual:
        return
    finally:
        input_limits._CHUNK = was
    assert exact is not None, xml
    assert scanned == (exact[0], max(exact[1], 1)), xml


@pytest.mark.parametrize("cell", ['<c r="B1" r="XFD1048576"><v>1</v></c>', '<c r="B1" s="1" r="XFD1048576"/>'])
def test_a_second_reference_in_a_cell_beyond_the_bounds_so_far_is_not_missed(cell: str) -> None:
    # B is beyond the first cell's column: an earlier scan raised its bound on the first r and never looked at the
    # rest of the tag, so the sheet measured 1 x 2 while python-calamine placed the cell at XFD1048576.
    xml = f'<worksheet {NS}><sheetData><row r="1"><c r="A1"><v>1</v></c>{cell}</row></sheetData></worksheet>'
    with pytest.raises(_Unusual):
        sheet_extent(io.BytesIO(xml.encode()))


def test_a_usual_sheet_is_measured_by_the_scan() -> None:
    rows = "".join(f'<row r="{n}" spans="1:3">' + "".join(f'<c r="{c}{n}" s="1" t="s"><v>{n}</v></c>' for c in "ABC")
                   + "</row>" for n in range(1, 2001))
    xml = f"<worksheet {NS}><sheetData>{rows}</sheetData></worksheet>".encode()
    assert sheet_extent(io.BytesIO(xml)) == _exact_extent(io.BytesIO(xml)) == (2000, 3)


def test_a_part_whose_cells_keep_raising_the_bounds_goes_to_the_parser() -> None:
    # Every cell beyond the rows so far (the row tags say 1): each would compile a new pattern, so the scan hands
    # the part to the parse instead of going quadratic. The parse measures it all the same.
    rows = "".join(f'<row r="1"><c r="A{n}"><v>1</v></c></row>' for n in range(1, 5001))
    xml = f"<worksheet {NS}><sheetData>{rows}</sheetData></worksheet>".encode()
    with pytest.raises(_Unusual):
        sheet_extent(io.BytesIO(xml))
    assert _exact_extent(io.BytesIO(xml)) == (5000, 1)


# A CDATA section's text may hold '<' (cut into short runs, long as a whole); a comment splits a text in two.
cdata = st.integers(1, 60).map(lambda k: "<![CDATA[" + "ab<" * k + "]]>")
texts = st.lists(st.one_of(st.sampled_from(["a", " ", "&amp;", "&#29579;", "王", "<!-- c -->"]), cdata), max_size=60)


@st.composite
def shared_strings(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 5))):
        runs = draw(st.lists(texts, min_size=1, max_size=3))
        if len(runs) == 1:
            items.append(f"<si><t xml:space=\"preserve\">{''.join(runs[0])}</t></si>")
        else:  # rich text: one <t> a run
            items.append("<si>" + "".join(f"<r><rPr><b/></rPr><t>{''.join(r)}</t></r>" for r in runs) + "</si>")
    return (f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{"".join(items)}</sst>'
            .encode())


@settings(max_examples=400, deadline=None)
# Limits above the root tag's 72 bytes (a run from one '<' to the next counts the tag before a text).
@given(shared_strings(), st.integers(75, 150), st.sampled_from([8, 64, 1 << 22]))
def test_shared_strings_found_short_at_c_speed_are_short_for_the_parse(xml: bytes, limit: int, chunk: int) -> None:
    was = input_limits._CHUNK
    input_limits._CHUNK = chunk
    try:
        short = _texts_within(io.BytesIO(xml), limit)
    finally:
        input_limits._CHUNK = was
    try:
        _check_strings(Path("roster.xlsx"), "xl/sharedStrings.xml", io.BytesIO(xml), limit)
        refused = False
    except InputTooLarge:
        refused = True
    assert not (short and refused), xml  # "short" lets the parse be skipped only where it would pass
