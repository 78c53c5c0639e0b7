"""Log line format of the long-running processes: text (the default) or JSON, one object per line
(python-json-logger), with the run id and job of the scheduler run that logged it (contextvars).

ID numbers and URL passwords are masked by redact.py's filter, which every handler carries
(`install_log_redaction`); it renders exceptions into `exc_text`, which the JSON formatter puts in the object's
`exception` field, so a traceback never spills onto lines of its own.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from creditbridge.redact import install_log_redaction, screened_json

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
# How `serve` tells gunicorn's config module (webhooks/gunicorn_conf.py), after the exec, which format to use.
FORMAT_ENV = "CREDITBRIDGE_LOG_FORMAT"

RUN_ID: ContextVar[int | None] = ContextVar("creditbridge_run_id", default=None)
JOB: ContextVar[str | None] = ContextVar("creditbridge_job", default=None)


@contextlib.contextmanager
def job_context(job: str, run_id: int) -> Iterator[None]:
    """Every line logged inside (in this thread or task) carries `job` and `run_id`."""
    job_token, run_token = JOB.set(job), RUN_ID.set(run_id)
    try:
        yield
    finally:
        JOB.reset(job_token)
        RUN_ID.reset(run_token)


class ContextFilter(logging.Filter):
    """Copies the current job and run id onto each record (fields of the JSON object when set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job, run_id = JOB.get(), RUN_ID.get()
        if job is not None:
            record.job = job
        if run_id is not None:
            record.run_id = run_id
        return True


_CONTEXT = ContextFilter()


class _ScreenedJsonFormatter(JsonFormatter):
    """The JSON line as redact.json_for_screen writes JSON: the redacting filter masks the message and the
    exception, but a record's other attributes (a library's or a caller's `extra`) become fields too, and
    ensure_ascii=False leaves C1 and bidirectional controls raw for the terminal tailing the log."""

    def jsonify_log_record(self, log_data: Any) -> str:
        return screened_json(super().jsonify_log_record(log_data))


def json_formatter() -> JsonFormatter:
    """time (ISO 8601, UTC), level, logger, message, then run_id/job and any `extra`, exception when any."""
    return _ScreenedJsonFormatter("%(levelname)s %(name)s %(message)s", timestamp="time", json_ensure_ascii=False,
                         rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"})


def use_format(fmt: LogFormat, handlers: list[logging.Handler] | None = None) -> None:
    """Give `handlers` (default: the root logger's) the format and the context filter, then make sure every
    handler masks (redact.py)."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if fmt == "json":
            handler.setFormatter(json_formatter())
        if _CONTEXT not in handler.filters:
            handler.addFilter(_CONTEXT)
    install_log_redaction()


def add_root_handler(fmt: LogFormat) -> None:
    """A stderr handler on the root logger when it has none (a gunicorn worker: logging not configured), so
    the app's own warnings come out in `fmt` rather than through logging's plain last-resort handler."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    use_format(fmt, root.handlers)
