"""Applying a synthetic province to the sandbox LMS (in-process, loopback HTTP), end to end.

Prints wall time and Moodle write calls for: catalog + topics + first roster sync; an unchanged
re-sync (must be 0 write calls); a re-sync with 1% of teachers changed. The baseline measured in the
same run is the dry run of the same roster (read + validate + plan, nothing sent), so the ratio says
what applying costs on top of planning. Usage:
    python bench/sync_apply.py [--teachers 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from creditbridge.quickstart.province import write_changed_roster, write_province
from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread
from creditbridge.settings import load_settings
from creditbridge.store import open_store
from creditbridge.sync.service import sync_catalog, sync_roster, sync_topics


def timed(label: str, call: Any) -> Any:
    start = time.perf_counter()
    outcome = call()
    took = time.perf_counter() - start
    print(f"{label:<34} {took:8.2f} s  lms_calls {outcome.lms_calls:>6}  created {outcome.created:>6}  "
          f"updated {outcome.updated:>5}  transferred {outcome.transferred:>4}  suspended {outcome.suspended:>4}  "
          f"cases {outcome.lesson_cases_assigned:>6}  errors {len(outcome.errors)}")
    return took, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", type=int, default=1000, help="10 to 20,000 (default 1,000)")
    parser.add_argument("--batch", type=int, default=100, help="Moodle batch size (default 100)")
    args = parser.parse_args()
    batch = args.batch
    teachers = max(10, min(args.teachers, 20_000))  # bounded: the sandbox is a test double, not a Moodle
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request would drown the figures
    token = uuid.uuid4().hex
    app = create_app({"SANDBOX_TOKEN": token, "SANDBOX_DB": ":memory:"})
    handle = serve_in_thread(app)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            files = write_province(d / "province", teachers=teachers, seed=1)
            changed = d / "changed.csv"
            write_changed_roster(files.roster, changed, share=0.01, seed=2)
            settings = load_settings(None, env={}, overrides={
                "moodle": {"url": handle.url, "token": token, "batch_size": batch, "backoff_seconds": 0},
                "database": {"url": f"sqlite:///{d / 'state.db'}"},
                "sync": {"report_dir": str(d / "reports"), "username_key": "bench"}})
            store = open_store(settings.database.url)
            print(f"{teachers} teachers, {files.schools} schools, {files.courses} courses, batch {batch}")
            timed("catalog", lambda: sync_catalog(settings, store, files.catalog))
            timed("topics", lambda: sync_topics(settings, store, files.topics))
            base, _ = timed("roster dry run (baseline)", lambda: sync_roster(settings, store, files.roster,
                                                                              dry_run=True))
            first, _ = timed("roster first sync", lambda: sync_roster(settings, store, files.roster))
            again, unchanged = timed("roster unchanged re-sync", lambda: sync_roster(settings, store, files.roster))
            delta, _ = timed("roster 1% changed", lambda: sync_roster(settings, store, changed, force=True))
            print(f"first sync / dry run     {first / base:8.1f}x")
            print(f"unchanged / dry run      {again / base:8.1f}x   (write calls: {unchanged.lms_calls})")
            print(f"1% changed / dry run     {delta / base:8.1f}x")
            store.dispose()
    finally:
        handle.stop()
        state_of(app).close()


if __name__ == "__main__":
    main()
