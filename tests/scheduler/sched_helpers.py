"""Job functions and a scheduler process for the scheduler tests.

`tick_job` appends "<trigger time> <pid>" to the file named by $CB_TICK_FILE: a side effect outside the job-run
table, so a trigger run twice would show as a repeated line even though the table's unique key forbids a
second row."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def tick_job(ctx: Any) -> dict[str, Any]:
    delay = float(os.environ.get("CB_TICK_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    path = os.environ.get("CB_TICK_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{ctx.scheduled_at.isoformat()} {os.getpid()} {ctx.job_id}\n")
    return {"tick": 1}


def read_ticks(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        when, pid, job = line.split()
        out.append((when, int(pid), job))
    return out


def main() -> None:
    """`python sched_helpers.py DB_URL`: a real scheduler process (serve()) with one job firing every second."""
    import logging

    from apscheduler.triggers.cron import CronTrigger

    from creditbridge.scheduler import serve
    from creditbridge.scheduling.loop import JobSpec
    from creditbridge.settings import load_settings
    from creditbridge.store import open_store

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    url = sys.argv[1]
    settings = load_settings(None, env={}, overrides={
        "database": {"url": url},
        "scheduler": {"timezone": "UTC", "standby_retry_seconds": 0.3, "lock_check_seconds": 0.5}})
    store = open_store(url, migrate=False)
    serve(settings, store, specs=[JobSpec("tick", CronTrigger(second="*", timezone="UTC"), tick_job)])
    store.dispose()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()


class NoLock:
    """A leader lock always held: a scheduler started without the lock (by mistake, or where a test needs none)."""

    def acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def describe(self) -> str:
        return "no lock"
