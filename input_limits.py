"""Bounds on what one input file may cost (issue #14's resource bombs), used by every reader of outside files:
the sync readers (roster, catalog, topics), `intake import` and the rule-file loader.

- YAML: anchors and aliases are refused in data files (a "billion laughs" document of a few hundred bytes
  expands into billions of values), naming the line; so is nesting deeper than MAX_YAML_DEPTH (PyYAML composes
  recursively: 100,000 `[` took the reader down with a RecursionError); and a YAML file is read whole, so its
  size is bounded.
- XLSX: the reader (python-calamine, readers/xlsx.py) reads the shared-strings part whole, so before a
  workbook is opened the zip directory's uncompressed sizes are checked, and each shared string's length is
  checked (a 300 KB file can hold one 300 MB string): at C speed where no text can be that long
  (`_texts_within`), else with a streaming parse that names the string. It also unpacks a sheet into
  one array for the rectangle from its first to its last cell (a cell in A1 and one in XFD1048576: 550 GB,
  and the process aborts), so that rectangle is measured from the cell references first (`sheet_extent`);
  the same scan refuses a text in the sheet itself (an inline string, a formula's cached text) of more than
  16 MB, which the shared-strings check never sees.
- Lines of JSON-lines files are read with a bound (`bounded_lines`).
- Only regular files are read (`not_regular`): a FIFO blocks the reader until some writer comes, /dev/zero
  never ends, a directory has nothing to read; each is refused by name instead.
The numbers are settings ([limits], settings.model.InputLimits) with documented defaults.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, AnyStr

import yaml
from lxml import etree

from creditbridge import CreditbridgeError

if TYPE_CHECKING:  # only annotations: settings.load uses this module, so a runtime import would be a cycle
    from creditbridge.settings.model import InputLimits

_MB = 1 << 20
_SST = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}t"


class InputTooLarge(CreditbridgeError):
    """An input file goes beyond a bound of [limits]; the message names the file, the part or line, and the
    setting to raise."""


class AliasRefused(yaml.MarkedYAMLError):
    """A YAML anchor or alias in a data file. A YAMLError, so every YAML reader reports it like a syntax error,
    with its line."""


class NestingRefused(yaml.MarkedYAMLError):
    """YAML nested deeper than MAX_YAML_DEPTH. A YAMLError, reported like a syntax error, with its line."""


# Rule files and catalogs nest a few levels; PyYAML's composer recurses about three frames per level, so this
# stays far below Python's recursion limit whatever the caller's own depth.
MAX_YAML_DEPTH = 100


class NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors (&a) and aliases (*a): data files have no use for them, and nested
    aliases make a small file expand without bound. Refuses nesting deeper than MAX_YAML_DEPTH too."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            sign = "*" if kind == "alias" else "&"
            raise AliasRefused(None, None, f"YAML {kind} {sign}{anchor} at line {event.start_mark.line + 1}: anchors "
                               "and aliases are not accepted in data files; write each value out",
                               event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise NestingRefused(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep at line "
                                 f"{event.start_mark.line + 1}; no data file needs that", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def alias_problem(e: yaml.YAMLError) -> str | None:
    """The readable problem of a YAML structure refused here (an alias or anchor, too deep a nesting); None for
    another YAML error."""
    return e.problem if isinstance(e, AliasRefused | NestingRefused) else None


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular(mode: int) -> str | None:
    """What a file of this st_mode is ("a directory", "a named pipe (FIFO)", ...) when it is no regular file;
    None for a regular file. Readers check it before they read (for a FIFO: before a blocking open)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_KINDS if test(mode)), "a special file")


def check_file_size(path: Path, limit_mb: int, setting: str) -> None:
    size = path.stat().st_size
    if size > limit_mb * _MB:
        raise InputTooLarge(f"{path.name}: {size / _MB:.0f} MB is more than limits.{setting} = {limit_mb} MB; "
                            "check the file, or raise the limit")


def check_xlsx(path: Path, limits: InputLimits) -> None:
    """Refuse a workbook whose parts unpack beyond the limits, or whose shared strings hold one longer than a
    cell may be, before openpyxl reads any of it. A file that is no zip archive passes: the opener reports it."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limits.xlsx_uncompressed_mb * _MB:
                raise InputTooLarge(
                    f"{path.name}: the workbook unpacks to {total / _MB:.0f} MB, more than "
                    f"limits.xlsx_uncompressed_mb = {limits.xlsx_uncompressed_mb} MB (a zip bomb, or save it as CSV)")
            for info in infos:
                if not info.filename.lower().endswith("sharedstrings.xml"):
                    # Any other part may be the sheet python-calamine reads (it follows the workbook's
                    # relationships, not names): each one's cell rectangle is measured.
                    with z.open(info) as part:
                        text_max = max(_TEXT_RUN_MB * _MB, _MAX_CHAR_BYTES * limits.max_cell_chars)
                        try:
                            try:
                                rows, cols = sheet_extent(part, max_text_bytes=text_max)
                            except _Unusual:
                                with z.open(info) as again:
                                    rows, cols = _exact_extent(again)
                        except etree.XMLSyntaxError as e:
                            raise InputTooLarge(f"{path.name}: {info.filename} cannot be measured before it is read "
                                                f"(not well-formed XML: {e.msg}); a damaged file?") from None
                        except _LongText as e:
                            raise InputTooLarge(
                                f"{path.name}: {info.filename} holds a text of more than {text_max / _MB:.0f} MB "
                                f"{e.where}, far longer than limits.max_cell_chars = {limits.max_cell_chars:,} "
                                "characters; no cell of an export is that long") from None
                    if rows * cols > limits.xlsx_max_cells:
                        raise InputTooLarge(
                            f"{path.name}: {info.filename} spans {rows:,} rows × {cols:,} columns from A1 to its last "
                            f"cell, {rows * cols:,} cells, more than limits.xlsx_max_cells = "
                            f"{limits.xlsx_max_cells:,} (the reader holds that rectangle in memory); is a stray cell "
                            "far below or to the right of the data? Delete it, or save the sheet as CSV")
                    continue
                if info.file_size > limits.xlsx_shared_strings_mb * _MB:
                    raise InputTooLarge(
                        f"{path.name}: its shared strings ({info.filename}) unpack to {info.file_size / _MB:.0f} MB, "
                        f"more than limits.xlsx_shared_strings_mb = {limits.xlsx_shared_strings_mb} MB; save the "
                        "sheet as CSV, or raise the limit")
                with z.open(info) as part:
                    short = _texts_within(part, limits.max_cell_chars)
                if not short:
                    with z.open(info) as part:
                        _check_strings(path, info.filename, part, limits.max_cell_chars)
    except zipfile.BadZipFile:
        return


# The most bytes one character of a text can take in the XML: a numeric character reference, &#x10FFFF;. A text
# longer than this many bytes times limits.max_cell_chars is a cell longer than the limit, whatever it says.
_MAX_CHAR_BYTES = 10
# Below this, an over-long cell is left to the reader, whose error names its row and column (openpyxl writes a
# Chinese character as &#29579;: 8 bytes); above it, the cell would cost several times its size in memory
# (python-calamine's copy, Python's, the stripped one) before that error.
_TEXT_RUN_MB = 16


class _LongText(Exception):  # an internal signal from sheet_extent to check_xlsx, never shown as is
    def __init__(self, where: str) -> None:
        self.where = where


def _check_text_runs(chunk: bytes, limit: int, row_before: int) -> None:
    """_LongText when `chunk` (whole tags only) holds a run of more than `limit` bytes without markup: an inline
    string (`t="inlineStr"`) or a formula's cached text (`t="str"`), which the shared-strings check never sees
    and python-calamine unpacks whole (a 200 KB workbook held one 200 MB cell: 630 MB more memory before the
    cell's length was refused). Costs about one rfind per `limit` bytes: each window of `limit` bytes must
    hold a '<'. `row_before`: the row the chunk starts in (a giant row's cells come in several chunks)."""
    i, n = 0, len(chunk)
    while i + limit < n:
        j = chunk.rfind(b"<", i, i + limit + 1)
        if j < 0:
            # i is just after a '<': the text is what follows the end of that tag, up to the next tag.
            j = chunk.find(b"<", i)
            j = j if j >= 0 else n
            gt = chunk.find(b">", i, j)
            text = chunk[gt + 1 if gt >= 0 else i:j]
            if len(text) > limit and text.strip():  # whitespace between tags is no cell
                rows = _ROW_R.findall(chunk, 0, i)
                row = int(rows[-1]) if rows else row_before
                raise _LongText(f"in row {row:,}" if row else "in its first row")
        i = j + 1


_ROW_R = re.compile(rb'<row\b[^>]*?\sr="([0-9]{1,10})"')
_CHUNK = 1 << 22
_DIGITS = re.compile(rb"[0-9]{1,10}")


def _digits_at_most(n: int) -> bytes:
    """A regex matching the decimal numbers (no leading zero) from 1 to n; followed by a delimiter, as here."""
    s = str(n)
    alts = [s] if n > 0 else ["(?!)"]
    alts += [f"{s[:i]}[{1 if i == 0 else 0}-{int(d) - 1}][0-9]{{{len(s) - i - 1}}}"
             for i, d in enumerate(s) if int(d) > (1 if i == 0 else 0)]
    if len(s) > 1:
        alts.append(f"[1-9][0-9]{{0,{len(s) - 2}}}")
    return "|".join(f"(?:{a})" for a in alts).encode()


def _letters_at_most(col: str) -> bytes:
    """A regex matching the column names from A to col (of at most three letters); followed by digits, as here."""
    alts = [col]
    alts += [f"{col[:i]}[A-{chr(ord(c) - 1)}][A-Z]{{{len(col) - i - 1}}}" for i, c in enumerate(col) if c != "A"]
    if len(col) > 1:
        alts.append(f"[A-Z]{{1,{len(col) - 1}}}")
    return "|".join(f"(?:{a})" for a in alts).encode()


def _column_number(letters: str) -> int:
    n = 0
    for c in letters:
        n = n * 26 + ord(c) - 64
    return n


class _Unusual(Exception):  # an internal signal from sheet_extent to check_xlsx: measure the part exactly
    pass


# A cell tag as every writer we know writes it: r first, double-quoted, upper-case column, no leading zero, no
# namespace prefix, and after it only the attributes Excel, LibreOffice and openpyxl write. python-calamine
# (quick-xml) reads the other ways too (single quotes, spaces around '=', lower case, leading zeros, a prefix, a
# second r: each took a 5 KB file past an earlier scan and the process down asking for 526 GB), so a part with a
# cell written otherwise is measured by a real XML parser (_exact_extent). A second r in a tag (XML forbids it;
# quick-xml reads it, and the last one wins) makes a tag no canonical tag either.
# A row's r is not checked: python-calamine places a cell by its own r, and by the row's only when the cell has
# none (src/xlsx/cells_reader.rs), and a cell without r is no canonical cell.
_CELL_REST = rb'(?: s="[0-9]{1,6}")?(?: t="[a-zA-Z]{1,9}")?(?: (?:cm|vm|ph)="[0-9]{1,6}")*/?>'
_CANONICAL_CELL = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"' + _CELL_REST)
# A prefixed row or cell (<x:c ...>); the first pattern is a cheap literal-led hint, the second the tag itself.
_PREFIX_HINT = re.compile(rb":(?:c|row)[\s>/]")
_PREFIXED = re.compile(rb"<[^\s<>/:!?]+:(?:c|row)[\s>/]")
# Each raise of the bounds compiles a new pattern (~0.25 ms): a part whose cells keep raising them (rows out of
# order, or a sheet thousands of columns wide) would make the scan quadratic; past this many, the parse is cheaper.
_MAX_RAISES = 4096


def _beyond(max_row: int, max_col: str) -> re.Pattern[bytes]:
    """A cell tag that is not a canonical one within the bounds so far: one lookahead per cell, so a normal sheet
    costs one C-level pass that finds nothing (the bounds are raised from each chunk's last row first)."""
    return re.compile(rb'<c(?! r="(?:' + _letters_at_most(max_col) + rb")(?:" + _digits_at_most(max_row) + rb')"'
                      + _CELL_REST + rb")[\s>/]")


def sheet_extent(part: IO[bytes], *, max_text_bytes: int | None = None) -> tuple[int, int]:
    """(rows, columns) of the rectangle from A1 to a worksheet part's last cell, read as a stream.

    Written so that a normal sheet costs one C-level regex pass over its XML and no Python work per cell: the
    highest row is taken from the last row of each chunk, and the XML is searched only for a cell tag that is
    not canonical within the bounds so far (`_beyond`): a canonical one raises the bounds, any other raises
    _Unusual, and so does a prefixed tag: the caller measures the part with _exact_extent. With
    `max_text_bytes`, a text longer than that raises _LongText (`_check_text_runs`)."""
    max_row, max_col = 0, "A"
    raises = 0
    carry = b""
    while True:
        data = part.read(_CHUNK)
        buf = carry + data
        # Never a tag cut in two: up to the last <row.
        cut = buf.rfind(b"<row") if data else len(buf)
        if data and cut <= 0:
            if len(buf) < 16 * _CHUNK:
                carry = buf
                continue
            cut = buf.rfind(b"<")  # one giant row: cut before a tag
            cut = cut if cut > 0 else len(buf)
        chunk, carry = buf[:cut], buf[cut:]
        if max_text_bytes is not None:
            _check_text_runs(chunk, max_text_bytes, max_row)
        if _PREFIX_HINT.search(chunk) and _PREFIXED.search(chunk):
            raise _Unusual
        last = chunk.rfind(b'<row r="')
        if last >= 0:
            digits = _DIGITS.match(chunk, last + 8)
            max_row = max(max_row, int(digits.group()) if digits else 0)
        pos = 0
        while m := _beyond(max_row, max_col).search(chunk, pos):
            tag = _CANONICAL_CELL.match(chunk, m.start())
            raises += 1
            if tag is None or raises > _MAX_RAISES:
                raise _Unusual
            letters, digits_ = tag.group(1).decode(), int(tag.group(2))
            if (len(letters), letters) > (len(max_col), max_col):
                max_col = letters
            max_row = max(max_row, digits_)
            pos = tag.end()
        if not data:
            break
    return max_row, _column_number(max_col)


_REF = re.compile(r"\s*([A-Za-z]{1,10})?([0-9]{1,12})?\s*")


def _exact_extent(part: IO[bytes]) -> tuple[int, int]:
    """(rows, columns) of a worksheet part from a real XML parse (lxml, streaming): every row and cell element
    of any prefix, its r read as python-calamine reads it (any case, leading zeros), a row or cell without r
    the next position. Slower than sheet_extent's scan; only for parts written unlike every writer we know."""
    max_row = max_col = row = col = 0
    for event, elem in etree.iterparse(part, events=("start", "end"), tag=("{*}row", "{*}c"),
                                       resolve_entities=False, no_network=True):
        if event == "end":
            if etree.QName(elem).localname == "row":
                elem.clear(keep_tail=False)
            continue
        m = _REF.fullmatch(elem.get("r") or "")
        letters, digits = (m.group(1), m.group(2)) if m else (None, None)
        if etree.QName(elem).localname == "row":
            row, col = (int(digits) if digits else row + 1), 0
        else:
            col = _column_number(letters.upper()) if letters else col + 1
            row = int(digits) if digits else row
        max_row, max_col = max(max_row, row), max(max_col, col)
    return max_row, max_col


def _texts_within(part: IO[bytes], max_bytes: int) -> bool:
    """True when no text of the part can be longer than `max_bytes` characters: no run of more than that many
    bytes from one '<' to the next (a text and the tag before it; a character takes at least one byte), and no
    CDATA section (whose text may hold a '<'). The usual answer for shared strings, found at C speed (one rfind
    per `max_bytes` bytes: each such window must hold a '<'), where _check_strings' parse costs ~1.3 µs a
    string; False sends the part there, which decides and names the string."""
    carry = b""
    while True:
        data = part.read(_CHUNK)
        buf = carry + data
        if b"<![CDATA[" in buf:
            return False
        cut = buf.rfind(b"<") if data else len(buf)  # runs end at a '<': none is cut in two
        if cut < 0:
            if len(buf) > max_bytes:
                return False
            carry = buf
            continue
        chunk, carry = buf[:cut], buf[cut:]
        i, n = 0, len(chunk)
        while i + max_bytes < n:
            j = chunk.rfind(b"<", i, i + max_bytes + 1)
            if j < 0:
                return False
            i = j + 1
        if not data:
            return True


def _check_strings(path: Path, part_name: str, part: IO[bytes], max_chars: int) -> None:
    # Streaming, element by element (lxml keeps huge_tree off: a text node over 10 MB is an error by itself).
    n = 0
    try:
        for _, elem in etree.iterparse(part, events=("end",), tag=_SST, resolve_entities=False, no_network=True):
            n += 1
            if elem.text is not None and len(elem.text) > max_chars:
                raise InputTooLarge(
                    f"{path.name}: shared string {n} in {part_name} has {len(elem.text):,} characters, more than "
                    f"limits.max_cell_chars = {max_chars:,}; no cell of an export is that long")
            elem.clear(keep_tail=False)
    except etree.XMLSyntaxError as e:
        if "huge" in str(e).lower():
            raise InputTooLarge(
                f"{path.name}: shared string {n + 1} in {part_name} is longer than 10,000,000 characters, more than "
                f"limits.max_cell_chars = {max_chars:,}; no cell of an export is that long") from None
        return  # not well-formed: openpyxl reports the file as it always does


def bounded_lines(f: IO[AnyStr], max_chars: int) -> Iterator[tuple[int, AnyStr | None]]:
    """(line number, line) of a text or binary file, reading at most `max_chars` characters (bytes) at a time: a
    line longer than that gives None (its rest is skipped, never held), so one huge line cannot fill the memory."""
    n = 0
    while True:
        line = f.readline(max_chars + 1)
        if not line:
            return
        n += 1
        newline = "\n" if isinstance(line, str) else b"\n"
        if len(line) > max_chars and not line.endswith(newline):
            while (rest := f.readline(max_chars)) and not rest.endswith(newline):
                pass
            yield n, None
            continue
        yield n, line
