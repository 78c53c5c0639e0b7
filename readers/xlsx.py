"""Reading the first sheet of an outside XLSX file (roster, catalog, topics, `intake import`): python-calamine.

python-calamine (Rust calamine) reads a 1,000,000-row roster many times faster than openpyxl's read-only mode,
which is why it reads every XLSX input (openpyxl still writes our files). What it does, and how this module
makes it safe and gives the values openpyxl gave, so the validation and the row numbers stay the same:

- Memory: python-calamine 0.9 has no lazy row reader. Opening a sheet unpacks the cells of its used area
  (the rectangle from its first to its last cell) into a compact Rust array; `iter_rows` then turns one row
  at a time into Python values, so Python objects stay bounded and the Rust array costs about
  `BYTES_PER_CELL` per cell of the rectangle. The rectangle is allocated whole (a sheet with a cell in A1
  and one in XFD1048576 asks for 550 GB and aborts the process), so `input_limits.check_xlsx` measures it
  from the cell references, against `limits.xlsx_max_cells`; the unpacked size (zip bombs) and each shared
  string are checked there as well.
- Two ways, one result. A workbook under `limits.xlsx_in_process_mb` (4 MB compressed) is checked, then
  unpacked in this process: the reference. A larger one is unpacked in a child process
  (readers/sheet_process.py: a new interpreter, never a fork of this one, which may hold database connections
  and threads) whose address space is capped (`address_cap`, RLIMIT_AS), while this process runs the scan on
  the other core: unpacking a 1,000,000-row roster takes ~12 s of CPU, the scan ~5 s, and the dry run waits
  for the longer of the two instead of both. If the scan refuses the file, the child is ended and the scan's
  error raised, as before; if the child dies (a bomb the scan missed makes Rust abort under the cap, or it is
  killed), `InputTooLarge` or `XlsxReadError` says so and names the limits, never a traceback. The child turns
  the rows into what the reader needs (readers/cells.py, `sheet_rows`) and sends them in batches, so this
  process only unpickles them. Each `rows()`/`text_batches()` call is a new pass, which may be abandoned
  (the header search reads ~10 rows) or interleaved with another; the child leaves a pass for a newer request.
  A command that knows its file from the start opens it within `read_ahead`: the child starts unpacking at
  once, while the command imports its flow, opens the store and takes its run lock, and the FirstSheet opened
  later adopts it.
  `FirstSheet.close()` (or its context, or its finalizer) ends and reaps the child, so its CPU counts in this
  process's children. Where RLIMIT_AS is not enforced (macOS) the scan runs first and the child starts after;
  on Windows every workbook is read in this process.
- Row numbers: `iter_rows` starts at row 1 (empty rows above the data come as empty rows) but at the first
  used column; the columns left of it are put back, so a cell has the index openpyxl gave it.
- Values, as openpyxl's read-only `values_only` gave them: a date cell at midnight comes as a `date` from
  calamine and is given back as a `datetime` (openpyxl's type); a whole number as the int openpyxl read
  from `<v>3</v>`, for numbers below 10^15 (beyond that a float, as Excel holds it: an ID number typed as a
  number has lost its last digits). Empty cells are "" (openpyxl: None). A cached error value of a formula
  (`#N/A`) comes as "" from python-calamine, where openpyxl gave the text "#N/A".
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from creditbridge import CreditbridgeError
from creditbridge.input_limits import InputTooLarge, check_xlsx
from creditbridge.readers.cells import TEXT, VALUES, row_batches, sheet_rows
from creditbridge.readers.sheet_process import BATCH_ROWS, Unreadable, unpack, unpacked
from creditbridge.settings.model import InputLimits

log = logging.getLogger(__name__)

# Size of one cell of the Rust array python-calamine unpacks a sheet into (its Data enum), measured.
BYTES_PER_CELL = 32
# The child's address-space cap (address_cap) beyond its cells: the interpreter, python-calamine and the pickled
# batches (~60 MB of address space measured), with room to spare.
CHILD_BASE_MB = 256
# Linux enforces RLIMIT_AS; macOS accepts the call and ignores it, and Windows has no `resource`. Without the cap
# a bomb the scan missed could take the machine's memory, so there the scan runs first (as it did before the
# child process) and the child starts only once the scan has passed the file.
_CAP_ENFORCED = sys.platform.startswith("linux")
# The child: the parent's sys.path, so it imports the same creditbridge (as multiprocessing's spawn does). Not
# multiprocessing's spawn itself: it imports the parent's __main__ again in the child, here the whole CLI
# (measured 1.6 s and 70 MB for nothing).
_CHILD_MAIN = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
               "from creditbridge.readers.sheet_process import main; main(sys.argv[2:])")


class XlsxReadError(CreditbridgeError):
    """The file is not a workbook python-calamine can read (renamed, truncated, encrypted, no sheet), or the
    process reading it ended before it was read."""


def address_cap(limits: InputLimits) -> int:
    """Bytes of address space the child reading a sheet may take: the largest rectangle the limits allow, twice
    (python-calamine holds the list of cells it read and the array it builds from them at once), its texts (no more
    than the workbook's unpacked size), and CHILD_BASE_MB. A 1,000,000-row roster (13,000,000 cells) took 1,443 MB
    of address space at its peak; with the default limits the cap is 4,135 MB."""
    return (CHILD_BASE_MB << 20) + 2 * limits.xlsx_max_cells * BYTES_PER_CELL + (limits.xlsx_uncompressed_mb << 20)


class FirstSheet:
    """The first sheet of a workbook, unpacked once (limits checked first); `rows()` and `text_batches()` may be
    called again and again without reading the file again (a plan's second pass over a roster).

    A file of at least `limits.xlsx_in_process_mb` (compressed) is unpacked in a child process (_SheetProcess);
    a smaller one here, which is the reference the child's path is tested against. Close it (or use it as a
    context manager) to end the child at once; otherwise it ends when the sheet is garbage-collected."""

    def __init__(self, path: Path, limits: InputLimits) -> None:
        self._sheet: Any = None
        self._child: _SheetProcess | None = None
        try:
            size = path.stat().st_size
        except OSError as e:
            raise XlsxReadError(f"{path.name}: cannot be read: {e.strerror or type(e).__name__}") from None
        # A reader read_ahead started for this file; ended here if the file is no longer the one it opened (then
        # it may be small enough to read in this process, and the reader would hold its memory for the run).
        ahead = _adopt(path, limits)
        if not _in_child(size, limits):
            check_xlsx(path, limits)
            try:
                self._sheet = unpack(path)
            except Unreadable as e:
                raise XlsxReadError(f"{path.name}: {e}") from None
        else:
            self._child = ahead or _SheetProcess(path, limits)
            self._child.wait_open()

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """`(row number, values)`, the first row of the sheet being row 1; empty rows come as lists of "".
        Values are typed as openpyxl typed them (cells.openpyxl_value)."""
        if self._child is None:
            yield from sheet_rows(self._sheet, VALUES)
            return
        for batch, _ in self._child.batches(VALUES, 0, 0):
            yield from batch

    def text_batches(self, after: int, width: int) -> Iterator[tuple[list[tuple[int, list[str]]], int]]:
        """The rows below row `after` as readers/table.py reads them (cells.sheet_rows' TEXT: stripped texts, empty
        rows left out, padded to `width`), in batches with a length none of their cells exceeds (cells.row_batches)."""
        if self._child is None:
            return row_batches(sheet_rows(self._sheet, TEXT, after, width), BATCH_ROWS, TEXT)
        return self._child.batches(TEXT, after, width)

    def close(self) -> None:
        """End the child process, if any (reaped, so its CPU counts in the parent's children)."""
        if self._child is not None:
            self._child.close()

    def __enter__(self) -> FirstSheet:
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _SheetProcess:
    """The child process unpacking a sheet and serving its rows (readers/sheet_process.py has the protocol)."""

    def __init__(self, path: Path, limits: InputLimits) -> None:
        self._path = path
        self._name = path.name
        self._limits = limits
        self._cap = address_cap(limits) if _CAP_ENFORCED else 0
        self._passes = 0
        if not self._cap:
            check_xlsx(path, limits)
        parent_end, child_end = socket.socketpair()
        with parent_end, child_end:
            # No fork of this process (it may hold database connections and threads): a new interpreter.
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, json.dumps(sys.path), str(path), str(child_end.fileno()),
                 str(self._cap)],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                # Its stderr would only repeat, in Rust's or Python's words, what the parent says of its end.
                stderr=subprocess.DEVNULL)
            self._conn = Connection(parent_end.detach())
        self._end = weakref.finalize(self, _end_child, self._proc, self._conn)
        self._started_cpu = time.process_time()

    def wait_open(self) -> None:
        """Run the scan here while the child unpacks, then wait for the child's answer: the sheet is unpacked,
        or it cannot be (XlsxReadError, InputTooLarge; the child is ended either way)."""
        path, limits = self._path, self._limits
        try:
            started, cpu = time.perf_counter(), time.process_time()
            if self._cap:
                check_xlsx(path, limits)  # on this core while the child unpacks on the other
            scanned, scan_cpu = time.perf_counter(), time.process_time() - cpu
            answer = self._recv()
            if answer[0] == "unreadable":
                raise XlsxReadError(f"{self._name}: {answer[1]}")
            # What the run waits for: with a core each, the longer of the scan and the child's unpacking (its
            # CPU, interpreter start included, comes with its answer); the wall times show the machine's load.
            log.debug("%s: started the sheet reader at %.2f s of this process's CPU, needed it at %.2f s; scan "
                      "%.2f s CPU (%.2f s wall), unpacking %.2f s CPU in process %d (waited %.2f s wall)",
                      self._name, self._started_cpu, cpu, scan_cpu, scanned - started, answer[1], self._proc.pid,
                      time.perf_counter() - started)
        except BaseException:
            self.close()
            raise

    def batches(self, mode: str, after: int, width: int) -> Iterator[tuple[list[tuple[int, list[Any]]], int]]:
        """One pass over the rows below `after` (cells.sheet_rows), batch by batch. Another pass started while
        this one is paused supersedes it in the child; this one then asks again from the row after its last."""
        last = after
        while True:
            self._passes += 1
            pass_id = self._passes
            self._send(("pass", pass_id, mode, last, width))
            finished = False
            try:
                while True:
                    message = self._recv()
                    if message[1] != pass_id:
                        continue  # a batch of a pass abandoned earlier
                    if message[0] == "end":
                        finished = True
                        return
                    batch = unpacked(message) if message[0] == "packed" else message[2]
                    last = batch[-1][0]
                    yield batch, message[-1]
                    if self._passes != pass_id:
                        break
            finally:
                if not finished and self._passes == pass_id and self._end.alive:
                    # Abandoned (the header search reads ~10 rows): the child stops streaming it.
                    self._send(("stop", pass_id), quiet=True)

    def close(self) -> None:
        self._end()

    def _send(self, request: tuple[Any, ...], quiet: bool = False) -> None:
        try:
            self._conn.send(request)
        except OSError:
            if quiet:
                return
            raise self._died(memory=False) from None

    def _recv(self) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError):
            raise self._died(memory=False) from None
        if message[0] == "memory":
            raise self._died(memory=True)
        return message

    def _died(self, memory: bool) -> CreditbridgeError:
        """The error to raise for a child that ended before the sheet was read; the child is reaped first (not
        killed: its connection closed because it is ending, and how it ended is what the error says)."""
        if self._end.detach() is not None:
            _end_child(self._proc, self._conn, kill=False)
        code = self._proc.returncode
        limits = self._limits
        if memory or code == -signal.SIGABRT:  # python-calamine (Rust) aborts when an allocation fails
            return InputTooLarge(
                f"{self._name}: reading its first sheet needed more than the {self._cap >> 20:,} MB of memory the "
                f"reader may use (from limits.xlsx_max_cells = {limits.xlsx_max_cells:,} and "
                f"limits.xlsx_uncompressed_mb = {limits.xlsx_uncompressed_mb:,}); is a stray cell far below or to "
                "the right of the data? Delete it, or save the sheet as CSV")
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return XlsxReadError(f"{self._name}: the process reading its first sheet ended before the sheet was read "
                             f"({how}); if the machine is short of memory, lower limits.xlsx_max_cells "
                             f"(now {limits.xlsx_max_cells:,}) or save the sheet as CSV")


def _end_child(proc: subprocess.Popen[bytes], conn: Connection, kill: bool = True) -> None:
    """Close the connection, end the child (`kill`; else wait for its end, already under way) and reap it. A
    finalizer: it holds neither the sheet nor its reader."""
    conn.close()
    if proc.returncode is not None:
        return
    if kill:
        # Not proc.kill(): it would reap the child itself (Popen.poll) and lose its resource usage.
        try:
            os.kill(proc.pid, signal.SIGKILL)  # it holds nothing worth a clean exit, and may be deep in the unpacking
        except ProcessLookupError:
            pass
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.debug("sheet reader process %d: %.2f s CPU, peak RSS %.0f MB, %s", proc.pid,
              usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, f"exit {proc.returncode}")


def _in_child(size: int, limits: InputLimits) -> bool:
    """Whether a workbook of `size` bytes (compressed) is unpacked in a child process rather than here."""
    return size >= limits.xlsx_in_process_mb << 20 and os.name == "posix"


def _identity(path: Path) -> tuple[int, ...] | None:
    """What tells the file a reader started ahead opened from another one put at its path since: (device,
    inode, size, modification time, mode, change time), None if it cannot be read. The change time, which no
    one can set, tells a file rewritten in place with its modification time put back (`rsync --inplace -t`,
    `cp -p` onto it, `touch -r`) at the same size."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_ctime_ns


# Sheet readers started by read_ahead and not yet adopted: (the path as given, the file's identity, the limits,
# the reader).
_ahead: list[tuple[Path, tuple[int, ...], InputLimits, _SheetProcess]] = []


@contextmanager
def read_ahead(path: Path, limits: InputLimits) -> Iterator[None]:
    """Start unpacking the first sheet of a large workbook now, for the first FirstSheet of the same path and
    limits opened within the block to adopt: `sync roster` starts it before it imports its flow, opens the store
    and takes the run lock (0.1-0.2 s measured; the CLI's own imports before the command runs are the rest of
    the ~0.4 s before a reader can start).
    Anything else (a small or absent file, not an XLSX, a platform where the scan must run first) starts nothing,
    and FirstSheet reports the file's problems as always. A reader nobody adopted is ended on leaving the block
    (the run lock was held, the store could not be opened)."""
    identity = _identity(path)
    if (not _CAP_ENFORCED or identity is None or path.suffix.lower() not in {".xlsx", ".xlsm"}
            or not stat.S_ISREG(identity[4]) or not _in_child(identity[2], limits)):
        yield
        return
    if any(e[0] == path and e[1] == identity and e[2] == limits for e in _ahead):
        yield  # a read_ahead around this one started it already: a second reader would unpack it twice at once
        return
    entry = (path, identity, limits, _SheetProcess(path, limits))
    _ahead.append(entry)
    try:
        yield
    finally:
        if entry in _ahead:
            _ahead.remove(entry)
            entry[3].close()


def end_read_ahead() -> None:
    """End every reader read_ahead started that nobody adopted yet: the command is about to wait (for another
    run's lock, which may take hours), and an unpacked 1,000,000-row sheet holds ~1.4 GB meanwhile while its
    unpacking takes a core from the run it waits for. The FirstSheet opened after the wait starts its own."""
    while _ahead:
        _ahead.pop()[3].close()


def _adopt(path: Path, limits: InputLimits) -> _SheetProcess | None:
    """The reader read_ahead started for this file and these limits, if the file is still the one it opened."""
    for entry in _ahead:
        ahead_path, identity, ahead_limits, child = entry
        if ahead_path == path and ahead_limits == limits:
            _ahead.remove(entry)
            if identity == _identity(path):
                return child
            child.close()  # another file now lies at the path: what the child unpacks is not it
            return None
    return None


def first_sheet_rows(path: Path, limits: InputLimits) -> Iterator[tuple[int, list[Any]]]:
    """The rows of the workbook's first sheet (FirstSheet.rows). The limits are checked and the sheet unpacked
    when this is called (XlsxReadError / InputTooLarge at once, before any row)."""
    return FirstSheet(path, limits).rows()
