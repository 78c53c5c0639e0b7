"""Masking of what creditbridge shows: ID numbers (身份证号) and passwords inside URLs.

The sources mask first (SQLAlchemy engines hide SQL parameters, messages name rows by masked number,
URLs are shown through `mask_url`); this module is also the backstop for what they miss: a logging
filter on every handler and an excepthook, so a database error quoting a key value (PostgreSQL's
"Key (programme, id_number)=(...) already exists") or a library's message never prints a full number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from creditbridge.records.id_number import mask_id_numbers

HIDDEN = "***"
# `scheme://user:password@` inside free text (a URL in an exception message or log line).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)(?=@)")


def mask_url(url: str) -> str:
    """`url` with its password (http://user:pw@host) replaced by ***; any other URL unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an unparsable netloc (bad port, brackets): fall back to the text pattern
        return _URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, url)
    if not password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{HIDDEN}@{host}"))


def redact(text: str) -> str:
    """`text` with every ID number masked (records.id_number) and every URL password hidden."""
    return mask_id_numbers(_URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, text))


# What a terminal acts on instead of showing: C0 and C1 control characters (ESC starts the sequences that
# recolour, retitle, clear or rewrite the screen; 0x9b is a one-byte CSI), DEL, and the bidirectional overrides and
# isolates that make text display in another order than it reads (CVE-2021-42574).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode("ascii")


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """Text from outside (a Moodle site, a webhook sender, a database's message) as it may be shown to people:
    control characters written as escapes (ESC as \\x1b), ID numbers masked, URL passwords hidden.
    `keep_newlines` for messages of several lines of creditbridge's own."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return redact(pattern.sub(_escaped, "" if text is None else str(text)))


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def json_for_screen(obj: Any, *, indent: int | None = None) -> str:
    """`obj` as JSON for stdout: Chinese text kept readable (not \\u-escaped), but every character `printable`
    escapes is written as a \\uXXXX escape, so a JSON consumer reads the same text and a terminal showing it
    is not driven by it (json.dumps escapes C0 only, not C1 or the bidirectional controls). ID numbers masked,
    URL passwords hidden. Outside strings json.dumps writes ASCII only (newlines when indenting, which stay), so
    the escapes land inside strings."""
    return screened_json(json.dumps(obj, ensure_ascii=False, indent=indent, default=str))


def screened_json(text: str) -> str:
    """JSON text (written with ensure_ascii=False) made safe to show as json_for_screen makes it: C1 and
    bidirectional controls as \\uXXXX escapes, ID numbers masked, URL passwords hidden."""
    return redact(_CONTROL_BUT_NEWLINE.sub(_json_escaped, text))


def _screened_arg(arg: object) -> object:
    """A log argument with its control characters escaped, newlines included: arguments carry text from outside
    (a username, a course idnumber, a database's message), and a newline in one would start a forged log line
    (CWE-117). Numbers and objects whose text is clean are left as they are, so %d and %r format them as usual."""
    if arg is None or isinstance(arg, int | float):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    if not _CONTROL.search(text):
        return arg
    return _CONTROL.sub(_escaped, text)


class _ScreenedMapping(Mapping[Any, object]):
    """logging's one-mapping form ("%(user)s"), screened as it is read. A view rather than a copy: the mapping
    may answer keys it does not hold (gunicorn's access-log atoms give "-" for a missing header)."""

    def __init__(self, inner: Mapping[Any, object]) -> None:
        self._inner = inner

    def __getitem__(self, key: Any) -> object:
        return _screened_arg(self._inner[key])

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


def _screened_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(map(_screened_arg, args))
    if isinstance(args, Mapping):
        return _ScreenedMapping(args)
    return args


class RedactingFilter(logging.Filter):
    """Masks the formatted message, the exception text and the stack of every record it passes, and escapes
    the control characters in it (a text log line stays one line whatever its arguments held).

    The message is formatted here (args merged in) so an ID number given as an argument is caught too;
    the exception is rendered into `exc_text`, which every logging.Formatter prints instead of
    formatting `exc_info` again. Newlines in the message's own text stay (messages of several lines of
    creditbridge's own); in its arguments they are escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = _screened_args(record.args)
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: let logging report it as it always does
            return True
        record.msg, record.args = redact(_CONTROL_BUT_NEWLINE.sub(_escaped, message)), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the redacting filter on every handler there is now: the root's, every named logger's
    (gunicorn's error and access logs, Flask's) and logging's last-resort handler, which prints a
    library's warnings when nobody configured logging (as in a gunicorn worker)."""
    handlers: list[logging.Handler] = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def _print_redacted(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))
    sys.stderr.flush()


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(f"Exception in thread {name}:\n")
    _print_redacted(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def install_excepthooks() -> None:
    """An uncaught exception (a bug, or a database error no flow expected) prints its traceback masked."""
    sys.excepthook = _print_redacted
    threading.excepthook = _thread_hook
