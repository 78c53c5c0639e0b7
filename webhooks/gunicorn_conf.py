"""gunicorn's config module for `creditbridge serve` (`-c python:creditbridge.webhooks.gunicorn_conf`): server hooks
for prometheus-client's multiprocess mode and the log format. `serve` passes what they need in the environment
(the exec'd gunicorn has no other way to hear from it).

Multiprocess mode (prometheus-client's documented gunicorn setup): every worker writes its counters to files in
PROMETHEUS_MULTIPROC_DIR and a scrape adds them up. `serve` makes that directory per start (private, empty);
here it is emptied again when gunicorn starts (a reload), a dead worker's files are marked in child_exit, and the
directory goes when gunicorn exits.
"""

from __future__ import annotations

# gunicorn's master loads this module, and its workers are forked from it before a gevent worker monkey-patches:
# nothing of the receiver may be imported here (webhooks.resources makes its lock at import, and in a worker it
# must be gevent's), only the log and metrics helpers below.
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn import glogging
from prometheus_client import multiprocess

from creditbridge.logs import FORMAT_ENV, LogFormat, add_root_handler, use_format
from creditbridge.metrics import MULTIPROC_ENV, OWNED_DIR_ENV


def _directory() -> Path | None:
    found = os.environ.get(MULTIPROC_ENV)
    return Path(found) if found else None


def on_starting(server: Any) -> None:
    directory = _directory()
    if directory is not None and os.environ.get(OWNED_DIR_ENV) == str(directory):
        # Counts of an earlier start would be added to this one's: a start begins at zero.
        for file in directory.glob("*.db"):
            file.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if _directory() is not None:
        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = _directory()
    if directory is not None and os.environ.get(OWNED_DIR_ENV) == str(directory):
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)


class CreditbridgeLogger(glogging.Logger):
    """gunicorn's logger with creditbridge's format (logs.py) on its error and access logs, and the masking of
    redact.py on every handler from the master on (the workers inherit it)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        fmt: LogFormat = "json" if os.environ.get(FORMAT_ENV) == "json" else "text"
        use_format(fmt, [*self.error_log.handlers, *self.access_log.handlers])
        if fmt == "json":
            add_root_handler(fmt)  # the app's own warnings in the workers, as JSON too


logger_class = CreditbridgeLogger
