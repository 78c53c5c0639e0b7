"""Waiting, in a test, until another session is blocked on a PostgreSQL row lock."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from sqlalchemy import create_engine, text


def wait_for_lock_waiter(url: str, what: str, timeout: float = 60.0) -> None:
    """Return once some session of `url`'s database waits on a lock; fail naming `what` after `timeout` s."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as c:
                waiting = c.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND wait_event_type = 'Lock'"))
            if waiting:
                return
            assert time.monotonic() < deadline, f"{what} never reached the contested INSERT"
            time.sleep(0.05)
    finally:
        engine.dispose()


def run_past_a_rival(pg_url: str, argv: list[str], env: dict[str, str], rival: Any, what: str
                     ) -> tuple[int, str, str]:
    """Run a creditbridge command while `rival` (an open transaction holding the rows it will insert) is
    uncommitted; once the command waits on their lock, commit the rival, so the command meets a unique-key
    violation. (return code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock_waiter(pg_url, what)
        rival.commit()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err
