"""Opening a workbook's first sheet with python-calamine (`unpack`), and the child process that does it for a
large file and serves its rows (`main`, `serve`); readers/xlsx.py's FirstSheet starts and talks to it.

Why a child process: python-calamine unpacks the whole used rectangle of a sheet into one Rust array before the
first row can be read (~12 s of CPU for a 1,000,000-row roster), and a rectangle larger than the memory makes
Rust abort the process. In a child, the unpacking runs on the second core while the parent runs the pre-read scan
(input_limits.check_xlsx), and under an address-space cap, so a bomb the scan missed ends the child, never the CLI.
The child also turns the rows into what the reader needs (cells.sheet_rows), so the parent only unpickles them.

Imports only the standard library, python-calamine and readers/cells.py: the child pays for nothing else.

Protocol over one duplex connection (multiprocessing.connection.Connection on a socket pair; pickled tuples):
- child -> parent, once: ("open", its CPU seconds so far) when the sheet is unpacked, ("unreadable", reason)
  when python-calamine cannot open it, ("memory",) on MemoryError (the Rust side aborts instead: the parent sees
  the connection close).
- parent -> child: ("pass", id, mode, after, width) asks for the rows below row `after` (cells.sheet_rows);
  ("stop", id) abandons it. End of file on the connection: the parent is done or gone, and the child exits.
- child -> parent, per pass: ("rows", id, batch, longest) ... then ("end", id); a TEXT batch comes packed,
  ("packed", id, row numbers, one string, longest) (`pack`, `unpacked`). Between batches the child looks
  for a newer request and, if there is one, leaves the pass for it: the parent discards batches of a pass it no
  longer reads. A child blocked sending a batch is unblocked by the parent reading (and discarding) it, so no
  request waits behind a full pipe.
"""

from __future__ import annotations

import gc
import resource
import signal
import time
from collections.abc import Iterator
from itertools import islice, repeat
from multiprocessing.connection import Connection
from operator import itemgetter
from pathlib import Path
from typing import Any

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    PasswordError,
    WorksheetNotFound,
    XmlError,
    ZipError,
)

from creditbridge.readers.cells import TEXT, row_batches, sheet_rows

# Rows per message: large enough that pickling and the pipe cost little per row (~0.1 ms a batch), small enough
# that a pass the parent abandons (the header search reads ~10 rows) stops after one batch.
BATCH_ROWS = 2000
# A TEXT batch travels as one string, its cells joined by UNIT and its rows by RECORD (ASCII's unit and record
# separators): unpickling one string and splitting it costs the parent about half of unpickling every cell, and
# the parent's work is what the dry run waits for. A batch holding either character in a cell (Excel can write
# any character, `_x001F_`) goes as lists of cells instead.
UNIT = "\x1f"
RECORD = "\x1e"
# The first bytes of an OLE2 container: an .xls workbook, or an XLSX encrypted with a password (ECMA-376 part 2).
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")


class Unreadable(Exception):
    """The file is no workbook python-calamine can open; the message says why, without the file's name."""


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


def unpack(path: Path) -> CalamineSheet:
    """The first sheet of the workbook, unpacked (the limits must have been checked, or the address space capped)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(_OLE2)) == _OLE2:
                raise Unreadable("cannot be opened as an XLSX workbook (an OLE2 file: an .xls workbook renamed, or an "
                                 "XLSX protected with a password; save it as an XLSX without a password)")
        with CalamineWorkbook.from_path(path) as wb:
            if not wb.sheet_names:
                raise Unreadable("the workbook has no sheet")
            return wb.get_sheet_by_index(0)
    except CalamineError as e:
        raise Unreadable(f"cannot be opened as an XLSX workbook ({_reason(e)})") from None
    except OSError as e:
        raise Unreadable(f"cannot be read: {e.strerror or type(e).__name__}") from None


def pack(pass_id: int, batch: list[tuple[int, list[str]]]) -> tuple[Any, ...]:
    """The message carrying a TEXT batch: packed into one string when no cell holds a separator. Its bound on
    the cells' length is its longest row joined with the separators (cells.row_batches' bound plus a character
    per cell): measured on the lines the message is made of, where measuring the rows first joined each twice
    (~0.5 s of a 1,000,000-row sheet, in the process the dry run waits for while it streams)."""
    rows = list(map(itemgetter(1), batch))
    lines = list(map(UNIT.join, rows))
    longest = max(map(len, lines))
    text = RECORD.join(lines)
    if text.count(UNIT) != sum(map(len, rows)) - len(batch) or text.count(RECORD) != len(batch) - 1:
        return ("rows", pass_id, batch, longest)
    return ("packed", pass_id, list(map(itemgetter(0), batch)), text, longest)


def text_messages(pass_id: int, rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[tuple[Any, ...]]:
    """A TEXT pass's rows (cells.sheet_rows) as `pack`ed messages of up to `size` rows."""
    while batch := list(islice(rows, size)):
        yield pack(pass_id, batch)


def unpacked(message: tuple[Any, ...]) -> list[tuple[int, list[str]]]:
    """The batch of a "packed" message, as `pack` was given it."""
    _, _, numbers, text, _ = message
    return list(zip(numbers, map(str.split, text.split(RECORD), repeat(UNIT)), strict=True))


def _latest(conn: Connection) -> Any:
    """The newest of the requests waiting (older ones are superseded by it)."""
    request = conn.recv()
    while conn.poll():
        request = conn.recv()
    return request


def serve(conn: Connection, sheet: CalamineSheet, batch_rows: int = BATCH_ROWS) -> None:
    """Answer the parent's passes until it closes the connection (EOFError, or OSError if it is gone)."""
    request = conn.recv()
    while True:
        if request[0] != "pass":  # a stop for a pass already left
            request = conn.recv()
            continue
        _, pass_id, mode, after, width = request
        request = None
        rows = sheet_rows(sheet, mode, after, width)
        if mode == TEXT:
            messages = text_messages(pass_id, rows, batch_rows)
        else:
            messages = (("rows", pass_id, batch, longest) for batch, longest in row_batches(rows, batch_rows, mode))
        for message in messages:
            if conn.poll():
                request = _latest(conn)
                break
            conn.send(message)
        else:
            conn.send(("end", pass_id))
        if request is None:
            request = conn.recv()


def main(argv: list[str]) -> None:
    """The child: argv is the workbook's path, the connection's file descriptor and the address-space cap in bytes
    (0: none)."""
    path, fd, cap = Path(argv[0]), int(argv[1]), int(argv[2])
    # This process makes no reference cycles (batches of lists of strings, freed by their counts once sent): the
    # collector would only scan the batches in flight again and again (~0.15 s of a 1,000,000-row sheet).
    gc.disable()
    # Ctrl-C reaches the whole process group: it is the parent's to handle, and the parent ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cap:
        # Never above a limit the parent was given (a ulimit, a test's cap): the lower of the two holds.
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap if soft == resource.RLIM_INFINITY else min(cap, soft), hard))
    conn = Connection(fd)
    try:
        try:
            sheet = unpack(path)
        except Unreadable as e:
            conn.send(("unreadable", str(e)))
            return
        conn.send(("open", time.process_time()))
        serve(conn, sheet)
    except MemoryError:
        _say_memory(conn)
    except (EOFError, OSError):
        return  # the parent is done with the sheet, or gone


def _say_memory(conn: Connection) -> None:
    try:
        conn.send(("memory",))
    except (MemoryError, OSError):
        pass  # the parent reads the connection's end as the same death
