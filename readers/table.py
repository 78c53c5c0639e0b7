"""Tables in outside files (the provincial exports: roster, catalog, school topics; see readers/exports.py).

`open_table` opens the file, finds the header row and maps its headers onto our field names at once,
so a missing required column is reported (naming the header and the file) before any row is read.
Rows are then streamed, never held: iterating a `Table` opens the file again and yields
`(row_number, cells)`, where `cells[table.positions[field]]` is the text of that field and the row
number is the one a spreadsheet shows (the header is row 1).

Formats: XLSX (python-calamine, the first sheet: readers/xlsx.py), CSV in UTF-8, UTF-8 with BOM or
GB18030 (detected once per file from its first bytes, never guessed per row), and YAML for catalogs.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from creditbridge import CreditbridgeError
from creditbridge.input_limits import (
    InputTooLarge,
    NoAliasLoader,
    alias_problem,
    check_file_size,
    not_regular,
)
from creditbridge.readers.cells import cell_text
from creditbridge.readers.xlsx import FirstSheet, XlsxReadError
from creditbridge.settings.model import InputLimits


class ReadError(CreditbridgeError):
    """The file cannot be read as a table (unknown format, bad encoding, no header)."""


class MissingColumnError(ReadError):
    """A required column is not in the header row. Raised before any row is read."""

    def __init__(self, path: Path, headers: list[str], found: list[str]) -> None:
        self.path = path
        self.headers = headers
        names = ", ".join(headers)
        super().__init__(
            f"{path.name}: required column {names} missing from the header row "
            f"(found: {', '.join(h for h in found if h) or 'nothing'}); "
            "map another export's headers with [sync.header_map]"
        )


@dataclass(frozen=True)
class FieldSpec:
    """A field we read, the headers that name it in exports, and whether a file must have it."""

    name: str
    headers: tuple[str, ...]
    required: bool = True


_SAMPLE_BYTES = 1 << 20
_HEADER_SEARCH_ROWS = 10


def detect_encoding(path: Path) -> str:
    """The codec of a CSV file, decided once from its first bytes.

    A UTF-8 BOM gives "utf-8-sig"; otherwise a strict UTF-8 decode of the first megabyte is tried
    (incrementally, so a character cut at the end of the sample does not count against it), and
    anything that is not UTF-8 is taken as GB18030, the superset of GBK/GB2312 that Excel in China writes.
    """
    with open(path, "rb") as f:
        sample = f.read(_SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ReadError(f"{path.name}: UTF-16 text is not supported; save the file as UTF-8 or GB18030 CSV")
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _clean_header(h: Any) -> str:
    # Exports decorate headers: required markers (*), full-width spaces, stray BOMs, line breaks.
    text = "" if h is None else str(h)
    return text.replace("\ufeff", "").replace("\u3000", " ").replace("*", "").replace("＊", "").strip()


@dataclass
class Table:
    """One export file with its header resolved. Iterate it (again and again) for `(row, cells)`.

    columns: field name -> header as written in the file (use it in RowError.column).
    positions: field name -> index into `cells`; optional fields absent from the file are not in it.
    encoding: the CSV codec detected, or None for XLSX/YAML.
    """

    path: Path
    kind: str  # roster | catalog | topics (readers/exports.py)
    format: str  # csv | xlsx | yaml
    columns: dict[str, str]
    positions: dict[str, int]
    header_row: int
    width: int
    encoding: str | None = None
    delimiter: str = ","
    # A cell longer than this refuses the file (XLSX; CSV cells are bounded by csv's own field limit).
    max_cell_chars: int = InputLimits().max_cell_chars
    # XLSX: the sheet, unpacked once when the table was opened (unpacking is most of the cost of reading a
    # workbook); every iteration reads it, never the file again. Held as long as the table is (a large one in
    # a child process, which ends when the table is dropped: readers/xlsx.py).
    _sheet: FirstSheet | None = field(default=None, repr=False)
    _yaml_rows: list[tuple[int, list[str]]] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        if self.format == "csv":
            return self._iter_csv()
        if self.format == "xlsx":
            return self._iter_xlsx()
        return iter(self._yaml_rows or [])

    def chunks(self, size: int = 256) -> Iterator[list[tuple[int, list[str]]]]:
        """The same rows as iterating, in lists of up to `size`: CSV is read in C-level slices, which is what
        keeps a million-row plan within a few times a bare csv pass."""
        if self.format == "xlsx":
            # The sheet's rows come in batches already (readers/xlsx.py): cut into chunks at C speed.
            pending: list[tuple[int, list[str]]] = []
            for batch in self._xlsx_batches():
                pending += batch
                full = len(pending) - len(pending) % size
                for i in range(0, full, size):
                    yield pending[i:i + size]
                del pending[:full]
            if pending:
                yield pending
            return
        if self.format != "csv":
            it = iter(self)
            while chunk := list(islice(it, size)):
                yield chunk
            return
        width = self.width
        done = 0
        try:
            with open(self.path, encoding=self.encoding, newline="") as f:
                numbered = enumerate(csv.reader(f, delimiter=self.delimiter), start=1)
                for _ in islice(numbered, self.header_row):
                    pass
                while chunk := list(islice(numbered, size)):
                    done = chunk[-1][0]
                    cells = list(map(itemgetter(1), chunk))
                    if min(map(len, cells)) < width or not all(map(any, cells)):
                        chunk = [(r, c) for r, c in chunk if c and any(c)]
                        for _, c in chunk:
                            if len(c) < width:
                                c.extend([""] * (width - len(c)))
                        if not chunk:
                            continue
                    yield chunk
        except UnicodeDecodeError as e:
            raise ReadError(
                f"{self.path.name}: a row after row {done} is not valid {self.encoding} text although the start of "
                "the file was; save the whole file in one encoding (UTF-8 or GB18030)"
            ) from e
        except csv.Error as e:
            raise ReadError(f"{self.path.name}: after row {done}: {_csv_problem(e)}") from e

    @property
    def cells_stripped(self) -> bool:
        """Whether every cell comes stripped of surrounding whitespace: XLSX (cells.sheet_rows) and YAML
        (cells.cell_text) rows do; CSV rows come as the file wrote them."""
        return self.format != "csv"

    def column(self, name: str) -> str:
        """The file's header of a field (falls back to the field name for fields the file lacks)."""
        return self.columns.get(name, name)

    def dicts(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Rows as {field: text}: convenient for small files; the roster path uses the cells directly."""
        pos = self.positions
        for row, cells in self:
            yield row, {name: cells[i] for name, i in pos.items()}

    def _iter_csv(self) -> Iterator[tuple[int, list[str]]]:
        width = self.width
        row = 0
        try:
            with open(self.path, encoding=self.encoding, newline="") as f:
                reader = csv.reader(f, delimiter=self.delimiter)
                for cells in reader:
                    row += 1
                    if row <= self.header_row:
                        continue
                    if not cells or (not cells[0] and not any(cells)):
                        continue
                    if len(cells) < width:
                        cells.extend([""] * (width - len(cells)))
                    yield row, cells
        except UnicodeDecodeError as e:
            raise ReadError(
                f"{self.path.name}: row {row + 1} is not valid {self.encoding} text although the start of the file "
                "was; save the whole file in one encoding (UTF-8 or GB18030)"
            ) from e
        except csv.Error as e:
            raise ReadError(f"{self.path.name}: row {row + 1}: {_csv_problem(e)}") from e

    def _iter_xlsx(self) -> Iterator[tuple[int, list[str]]]:
        for batch in self._xlsx_batches():
            yield from batch

    def _xlsx_batches(self) -> Iterator[list[tuple[int, list[str]]]]:
        """The sheet's rows below the header in batches; a cell too long raises after the rows before it."""
        assert self._sheet is not None  # set by _open_xlsx
        longest = self.max_cell_chars
        # The cells come as text (stripped; the others rendered by cells.cell_text), empty rows left out, padded
        # to the header's width: in the child process that unpacked a large sheet, or here for a small one.
        for batch, batch_longest in self._sheet.text_batches(self.header_row, self.width):
            if batch_longest > longest:
                for i, (row, cells) in enumerate(batch):
                    if max(map(len, cells)) > longest:
                        if i:
                            yield batch[:i]
                        self._too_long(row, cells)
            yield batch

    def _too_long(self, row: int, cells: list[str]) -> None:
        i = next(i for i, c in enumerate(cells) if len(c) > self.max_cell_chars)
        names = {pos: self.columns.get(name, name) for name, pos in self.positions.items()}
        raise InputTooLarge(f"{self.path.name}: row {row}, column {names.get(i, i + 1)}: a cell of "
                            f"{len(cells[i]):,} characters, more than limits.max_cell_chars = {self.max_cell_chars:,}")


def _csv_problem(e: csv.Error) -> str:
    # csv's own bound on a cell is what keeps one huge CSV cell from filling the memory; say it plainly.
    if "field larger than field limit" in str(e):
        return f"a cell longer than {csv.field_size_limit():,} characters (the CSV cell limit); is this the right file?"
    return str(e)


def _header_lookup(fields: tuple[FieldSpec, ...], header_map: Mapping[str, str] | None) -> dict[str, str]:
    """Header text (case-folded) -> field name, including the configured export headers."""
    lookup: dict[str, str] = {}
    for spec in fields:
        lookup[spec.name.casefold()] = spec.name
        for h in spec.headers:
            lookup[h.casefold()] = spec.name
    for export_header, ours in (header_map or {}).items():
        target = lookup.get(_clean_header(ours).casefold())
        if target is not None:
            lookup[_clean_header(export_header).casefold()] = target
    return lookup


def _resolve_header(
    path: Path, header: list[str], fields: tuple[FieldSpec, ...], lookup: dict[str, str]
) -> tuple[dict[str, str], dict[str, int]]:
    columns: dict[str, str] = {}
    positions: dict[str, int] = {}
    for i, h in enumerate(header):
        name = lookup.get(h.casefold())
        if name is not None and name not in positions:
            columns[name] = h
            positions[name] = i
    missing = [spec.headers[0] if spec.headers else spec.name for spec in fields
               if spec.required and spec.name not in positions]
    if missing:
        raise MissingColumnError(path, missing, header)
    return columns, positions


def _pick_header(rows: list[list[str]], lookup: dict[str, str]) -> int:
    """Index of the header row: the first row naming a known column (exports may put a title above)."""
    for i, cells in enumerate(rows):
        if any(c.casefold() in lookup for c in cells):
            return i
    for i, cells in enumerate(rows):
        if any(cells):
            return i
    return 0


def open_table(
    path: str | Path, kind: str, fields: tuple[FieldSpec, ...], header_map: Mapping[str, str] | None = None,
    limits: InputLimits | None = None,
) -> Table:
    """Open an export file and resolve its header. Raises MissingColumnError / ReadError / InputTooLarge
    before any row."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ReadError(f"{path}: no such file") from None
    except OSError as e:  # a path through a file, a name too long, a symlink loop, no permission
        raise ReadError(f"{path}: cannot be read: {e.strerror or type(e).__name__}") from None
    what = not_regular(mode)
    if what is not None:  # a FIFO would block the first open, /dev/zero never ends
        raise ReadError(f"{path}: is {what}, not a regular file; give the path of the {kind} file")
    suffix = path.suffix.lower()
    lookup = _header_lookup(fields, header_map)
    limits = limits or InputLimits()
    if suffix in {".xlsx", ".xlsm"}:
        return _open_xlsx(path, kind, fields, lookup, limits)
    if suffix in {".yaml", ".yml"}:
        return _open_yaml(path, kind, fields, lookup, limits)
    if suffix in {".csv", ".txt", ".tsv"}:
        return _open_csv(path, kind, fields, lookup)
    raise ReadError(f"{path.name}: unknown file type {suffix or '(none)'}; use .xlsx, .csv or .yaml")


def _open_csv(path: Path, kind: str, fields: tuple[FieldSpec, ...], lookup: dict[str, str]) -> Table:
    encoding = detect_encoding(path)
    head: list[list[str]] = []
    try:
        with open(path, encoding=encoding, newline="") as f:
            first = f.readline(_SAMPLE_BYTES)  # bounded: a file without line breaks is not read whole here
            delimiter = "\t" if first.count("\t") > first.count(",") else ","
            f.seek(0)
            for cells in csv.reader(f, delimiter=delimiter):
                head.append([_clean_header(c) for c in cells])
                if len(head) >= _HEADER_SEARCH_ROWS:
                    break
    except csv.Error as e:
        raise ReadError(f"{path.name}: row {len(head) + 1}: {_csv_problem(e)}") from e
    except UnicodeDecodeError as e:
        raise ReadError(f"{path.name}: cannot read the header row as {encoding} CSV ({e})") from e
    if not head:
        raise ReadError(f"{path.name}: the file is empty (no header row)")
    idx = _pick_header(head, lookup)
    columns, positions = _resolve_header(path, head[idx], fields, lookup)
    return Table(path, kind, "csv", columns, positions, header_row=idx + 1, width=len(head[idx]),
                 encoding=encoding, delimiter=delimiter)


def _open_xlsx(path: Path, kind: str, fields: tuple[FieldSpec, ...], lookup: dict[str, str],
               limits: InputLimits) -> Table:
    try:
        sheet = FirstSheet(path, limits)
    except XlsxReadError as e:
        raise ReadError(str(e)) from None
    head = [[_clean_header(v) for v in values] for _, values in islice(sheet.rows(), _HEADER_SEARCH_ROWS)]
    if not head:
        raise ReadError(f"{path.name}: the first sheet is empty (no header row)")
    idx = _pick_header(head, lookup)
    columns, positions = _resolve_header(path, head[idx], fields, lookup)
    return Table(path, kind, "xlsx", columns, positions, header_row=idx + 1, width=len(head[idx]),
                 max_cell_chars=limits.max_cell_chars, _sheet=sheet)


def _open_yaml(path: Path, kind: str, fields: tuple[FieldSpec, ...], lookup: dict[str, str],
               limits: InputLimits) -> Table:
    # Catalogs are small (thousands of courses); a YAML document is parsed whole, keeping each item's line
    # so errors point at the file the way row numbers point into a spreadsheet. Hence a bounded size, and no
    # anchors or aliases (nested aliases expand a few hundred bytes into billions of values).
    check_file_size(path, limits.yaml_mb, "yaml_mb")
    try:
        loader = NoAliasLoader(path.read_text(encoding="utf-8-sig"))
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        refused = alias_problem(e)
        if refused:
            raise ReadError(f"{path.name}: {refused}") from None
        raise ReadError(f"{path.name}: not valid UTF-8 YAML ({e})") from e
    except UnicodeDecodeError as e:
        raise ReadError(f"{path.name}: not valid UTF-8 YAML ({e})") from e
    if node is None:  # an empty document
        raise ReadError(f"{path.name}: expected a list of mappings (one per row)")
    items_node = node
    if isinstance(data, dict):
        key = next((k for k in ("courses", "catalog", "topics", "rows", "teachers") if k in data), None)
        if key is None:
            raise ReadError(f"{path.name}: expected a list of rows, or a mapping with a 'courses' list")
        items_node = next(v for k, v in node.value if getattr(k, "value", None) == key)
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ReadError(f"{path.name}: expected a list of mappings (one per row)")
    header: list[str] = []
    for d in data:
        for k in d:
            h = _clean_header(k)
            if h not in header:
                header.append(h)
    columns, positions = _resolve_header(path, header, fields, lookup)
    rows: list[tuple[int, list[str]]] = []
    for d, item in zip(data, items_node.value, strict=True):
        by_header = {_clean_header(k): v for k, v in d.items()}
        cells = [cell_text(by_header.get(h)) for h in header]
        if max(map(len, cells), default=0) > limits.max_cell_chars:
            i = next(i for i, c in enumerate(cells) if len(c) > limits.max_cell_chars)
            raise InputTooLarge(f"{path.name}: line {item.start_mark.line + 1}, {header[i]}: a value of "
                                f"{len(cells[i]):,} characters, more than limits.max_cell_chars = "
                                f"{limits.max_cell_chars:,}")
        rows.append((item.start_mark.line + 1, cells))
    return Table(path, kind, "yaml", columns, positions, header_row=0, width=len(header),
                 max_cell_chars=limits.max_cell_chars, _yaml_rows=rows)
