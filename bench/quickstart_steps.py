"""Benchmark: `creditbridge quickstart` step by step, and reconciliation against a same-run baseline.

    python bench/quickstart_steps.py                  # 100 teachers
    python bench/quickstart_steps.py --teachers 200

1. Runs the quickstart in-process (as the command does) in a scratch directory and prints each step's wall
   time and the process CPU time it used (getrusage), so a loaded machine's waiting shows apart from work.
2. Serves the sandbox.db it left again, takes state.db with its reconciled records removed, and reconciles
   twice against the same data: the baseline asks course by course (one completion-status call per enrolment
   no webhook reported, as reconcile did before and still does when a site does not answer
   core_enrol_get_users_courses), then the current way (a teacher's course list settles most pairs in one
   call). Prints calls, seconds and the ratio. Both runs must recover the same records.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.quickstart.config import run_settings
from creditbridge.quickstart.run import QuietProgress, StepResult, run_quickstart
from creditbridge.quickstart.services import SANDBOX_WWWROOT, Secrets
from creditbridge.sandbox.app import create_app
from creditbridge.sandbox.server import serve_in_thread
from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.webhooks.reconcile import reconcile


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timed(QuietProgress):
    def __init__(self) -> None:
        self.started = 0.0
        self.cpu: dict[str, float] = {}

    def begin(self, key: str, title: str, total: int | None = None) -> None:
        self.started = cpu()

    def end(self, step: StepResult) -> None:
        self.cpu[step.key] = cpu() - self.started


class PairByPair(MoodleClient):
    """A site whose service lacks core_enrol_get_users_courses: reconcile asks enrolment by enrolment."""

    def get_users_courses(self, userid: int) -> list[dict[str, Any]]:
        raise MoodleError("not in the service (baseline)", errorcode="accessexception")


def reconcile_once(directory: Path, client_cls: type[MoodleClient], token: str, url: str) -> dict[str, Any]:
    db = directory / "bench-state.db"
    shutil.copy(directory / "state.db", db)
    store = open_store(f"sqlite:///{db}")
    try:
        with store.session() as s:
            s.execute(delete(LearningRecordRow).where(LearningRecordRow.origin == "reconcile"))
        settings = run_settings(directory, Secrets.generate(), programme="sd-2022")
        started = time.perf_counter()
        with client_cls.from_url(url, token, backoff_seconds=0) as client:
            out = reconcile(settings, store, client).as_json()
        out["seconds"] = round(time.perf_counter() - started, 2)
        with store.session() as s:
            out["records"] = s.scalar(select(func.count()).select_from(LearningRecordRow)) or 0
        return out
    finally:
        store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teachers", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qs-bench-") as tmp:
        directory = Path(tmp) / "quickstart"
        progress = Timed()
        started, started_cpu = time.perf_counter(), cpu()
        summary = run_quickstart(directory, teachers=args.teachers, progress=progress)
        print(f"quickstart --teachers {args.teachers}: {time.perf_counter() - started:.1f} s wall, "
              f"{cpu() - started_cpu:.1f} s CPU (Python start not included)")
        for key, step in summary["steps"].items():
            extra = {k: step[k] for k in ("completions", "received", "receive_seconds", "process_seconds", "checked",
                                          "created", "calls") if k in step}
            print(f"  {key:<12} {step['seconds']:7.2f} s  cpu {progress.cpu.get(key, 0):6.2f} s  {extra or ''}")

        token = "bench" + "0" * 27
        app = create_app({"SANDBOX_TOKEN": token, "SANDBOX_DB": str(directory / "sandbox.db"),
                          "SANDBOX_WWWROOT": SANDBOX_WWWROOT})
        handle = serve_in_thread(app)
        try:
            base = reconcile_once(directory, PairByPair, token, handle.url)
            now = reconcile_once(directory, MoodleClient, token, handle.url)
        finally:
            handle.stop()
        for name, r in (("baseline, course by course", base), ("current, a teacher's course list", now)):
            print(f"reconcile {name:<33} {r['seconds']:6.2f} s  {r['calls']:5d} calls  checked {r['checked']}  "
                  f"recovered {r['created']}")
        print(f"ratio current/baseline: time {now['seconds'] / base['seconds']:.2f}, "
              f"calls {now['calls'] / base['calls']:.2f}")
        if (now["created"], now["records"]) != (base["created"], base["records"]):
            sys.exit("error: the two ways recovered different records")


if __name__ == "__main__":
    main()
