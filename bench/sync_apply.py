"""Applying a synthetic province to the sandbox LMS (in-process, loopback HTTP), end to end.

Prints wall time and Moodle write calls for: catalog + topics + first roster sync; an unchanged
re-sync (must be 0 write calls); a re-sync with 1% of teachers changed. The baseline measured in the
same run is the dry run of the same roster (read + validate + plan, nothing sent), so the ratio says
what applying costs on top of planning. Usage:
    python bench/sync_apply.py [--teachers 1000] [--batch 100]

With --cost real: the first roster sync of --teachers new sd-2022 teachers (100 to 1,000), run as a user runs
it (`creditbridge sync roster`, a process timed from start to exit) against `creditbridge sandbox --cost real
--workers W` (a process charging each call what a real Moodle 4.5 took) with moodle.concurrency = W, for each
W of --workers (default 1 2 4 8). Catalog and topics are synced once beforehand against a free sandbox; each W
starts from a copy of that site and store. The baseline of the same run: "tool_uploaduser-equivalent", Moodle's
own bulk upload doing the same work (the same accounts, cohort members and enrolments, counted in the site after
the W=1 run), its time computed from the same cost table (creditbridge/sandbox/cost.py). Usage:
    python bench/sync_apply.py --cost real [--teachers 300] [--workers 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from creditbridge.quickstart.province import write_changed_roster, write_province
from creditbridge.sandbox import cost
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


CLI = [sys.executable, "-m", "creditbridge.cli.main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(path: Path, *, batch: int, concurrency: int, db: Path, reports: Path) -> Path:
    path.write_text(f"[moodle]\nbatch_size = {batch}\nconcurrency = {concurrency}\n\n"
                    f'[database]\nurl = "sqlite:///{db.as_posix()}"\n\n'
                    f'[sync]\nreport_dir = "{reports.as_posix()}"\nusername_key = "bench"\n', encoding="utf-8")
    return path


class SandboxProcess:
    """`creditbridge sandbox` as a user starts it, on a free port, with the site in `db`."""

    def __init__(self, db: Path, token: str, *args: str) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.proc = subprocess.Popen([*CLI, "sandbox", "--port", self.url.rsplit(":", 1)[1], "--db", str(db), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "CREDITBRIDGE_MOODLE_TOKEN": token})
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "listening" not in first:
            self.stop()
            raise SystemExit(f"the sandbox did not start: {first!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _cli(config: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run([*CLI, "--config", str(config), *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=3600, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    # The limiter's cuts (connector.transport.Limiter logs each): 0 means the run never backed off.
    out["backoffs"] = done.stderr.count("Moodle is overloaded")
    return took, out


def _site_counts(db: Path) -> tuple[int, int, int]:
    """(accounts, cohort memberships, manual enrolments) the site holds for accounts sync made."""
    with sqlite3.connect(db) as con:
        users = con.execute("SELECT count(*) FROM user WHERE id > 2 AND deleted = 0").fetchone()[0]
        members = con.execute("SELECT count(*) FROM cohort_members WHERE userid > 2").fetchone()[0]
        enrolments = con.execute("SELECT count(*) FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid "
                                 "WHERE e.enrol = 'manual' AND ue.userid > 2").fetchone()[0]
    return users, members, enrolments


def real_cost(teachers: int, batch: int, workers: list[int]) -> None:
    token = uuid.uuid4().hex
    with open("/proc/loadavg", encoding="ascii") as f:
        load_before = " ".join(f.read().split()[:3])
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = write_province(d / "province", teachers=teachers, seed=1)
        site, state = d / "site.db", d / "state.db"
        env = {"CREDITBRIDGE_MOODLE_TOKEN": token}
        setup = SandboxProcess(site, token)
        try:
            base = {**env, "CREDITBRIDGE_MOODLE_URL": setup.url}
            cfg = _config(d / "setup.toml", batch=batch, concurrency=4, db=state, reports=d / "reports")
            _cli(cfg, base, "sync", "catalog", str(files.catalog))
            _cli(cfg, base, "sync", "topics", str(files.topics))
        finally:
            setup.stop()
        print(f"first sync of {teachers} new sd-2022 teachers ({files.schools} schools, {files.courses} courses), "
              f"batch {batch}, against `creditbridge sandbox --cost real --workers W`, moodle.concurrency = W")
        print(f"load average before: {load_before} (2 cores shared with other jobs)")
        rows: list[tuple[int, float, dict[str, Any], tuple[int, int, int]]] = []
        for w in workers:
            run_dir = d / f"w{w}"
            run_dir.mkdir()
            shutil.copy(site, run_dir / "site.db")
            shutil.copy(state, run_dir / "state.db")
            sandbox = SandboxProcess(run_dir / "site.db", token, "--cost", "real", "--workers", str(w))
            try:
                cfg = _config(run_dir / "c.toml", batch=batch, concurrency=w, db=run_dir / "state.db",
                              reports=run_dir / "reports")
                took, out = _cli(cfg, {**env, "CREDITBRIDGE_MOODLE_URL": sandbox.url}, "sync", "roster",
                                 str(files.roster))
            finally:
                sandbox.stop()
            if out["errors"] or out["created"] < teachers * 0.9:  # the generator makes a few leavers
                raise SystemExit(f"W={w}: created {out['created']} of {teachers}, errors {out['errors'][:3]}")
            rows.append((w, took, out, _site_counts(run_dir / "site.db")))
        users, members, enrolments = rows[0][3]
        created = rows[0][2]["created"]
        upload = cost.uploaduser_seconds(users=users, cohort_members=members, enrolments=enrolments)
        upload_rate = users / upload
        print(f"same work: {created} new teachers of {teachers} rows; the site then holds {users} accounts, "
              f"{members} cohort memberships, {enrolments} manual enrolments "
              f"({enrolments / users:.1f} manual enrolments per new teacher)")
        print(f"{'':<34} {'wall s':>8} {'users/s':>8} {'write calls':>11} {'backoffs':>8} {'vs uploaduser':>13}")
        print(f"{'tool_uploaduser-equivalent':<34} {upload:8.1f} {upload_rate:8.2f} {'-':>11} {'-':>8} "
              f"{1.0:12.2f}x")
        for w, took, out, counts in rows:
            if counts != rows[0][3]:
                raise SystemExit(f"W={w} left a different site: {counts} against {rows[0][3]}")
            rate = counts[0] / took
            print(f"{f'sync roster, W={w}':<34} {took:8.1f} {rate:8.2f} {out['lms_calls']:>11} {out['backoffs']:>8} "
                  f"{rate / upload_rate:12.2f}x")
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average after: {' '.join(f.read().split()[:3])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", type=int, default=None, help="10 to 20,000 (default 1,000; with --cost real "
                        "100 to 1,000, default 300)")
    parser.add_argument("--batch", type=int, default=100, help="Moodle batch size (default 100)")
    parser.add_argument("--cost", choices=["none", "real"], default="none",
                        help="real: against `creditbridge sandbox --cost real` processes (see above)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8],
                        help="with --cost real: the sandbox's workers and the client's concurrency (1 to 16)")
    args = parser.parse_args()
    if args.cost == "real":
        # Bounded: each W costs about teachers / (5 * W) seconds of real-site time.
        real_cost(max(100, min(args.teachers or 300, 1000)), args.batch,
                  [max(1, min(w, 16)) for w in args.workers])
        return
    args.teachers = args.teachers or 1000
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
