"""Benchmark: what a first sync of new sd-2022 teachers asks of Moodle under each enrolment policy.

    python bench/enrolment_policy.py                  # 300 teachers
    python bench/enrolment_policy.py --teachers 1000

For `[sync] electives = "manual"` (the baseline: every elective enrolled) and `"self"` (docs/sync.md "Enrolment
policy"), each against a fresh in-process sandbox and store, `creditbridge sync catalog / topics / roster` on
the same generated province (quickstart's generator, seed 7). Counted from what the sandbox holds afterwards:
manual enrolments, cohort memberships and welcome messages per new teacher, and the roster run's write calls.
The sandbox is 24x faster than a real site (timings.md), so no wall time is reported for it; instead the Moodle
time a real Moodle 4.5.6 would spend is estimated from the per-item costs measured there
(`fixtures/moodle-ws/timings.md`: 20.6 ms per created user, 8.9 ms per enrolment, 3.6 ms per cohort member),
and the ratio of the two policies is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.quickstart.province import write_province
from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread

# timings.md (real Moodle 4.5.6, one PHP process): per item, fixed costs of the call included.
MS_PER_USER, MS_PER_ENROLMENT, MS_PER_MEMBER = 20.6, 8.9, 3.6
TOKEN = "bench-enrolment-policy-token-0123456789"


def run(policy: str, files: Any, workdir: Path) -> dict[str, Any]:
    app = create_app({"SANDBOX_TOKEN": TOKEN})
    handle = serve_in_thread(app, "127.0.0.1", 0)
    try:
        config = workdir / f"{policy}.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{(workdir / f"{policy}.db").as_posix()}"\n\n'
            "[moodle]\nbatch_size = 100\nretries = 0\n\n"
            f'[sync]\nusername_key = "bench"\nelectives = "{policy}"\nreport_dir = "{workdir.as_posix()}/r-{policy}"\n',
            encoding="utf-8")
        env = {"CREDITBRIDGE_MOODLE_URL": handle.url, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN}
        runner = CliRunner()
        out: dict[str, Any] = {}
        for kind, path in (("catalog", files.catalog), ("topics", files.topics), ("roster", files.roster)):
            result = runner.invoke(cli, ["--config", str(config), "sync", kind, str(path), "--json"], env=env)
            if result.exit_code != 0:
                raise SystemExit(f"{policy} {kind}: {result.output[:500]}")
            out[kind] = json.loads(result.stdout)
        st = state_of(app)
        created = out["roster"]["created"]
        enrolments = st.scalar("SELECT COUNT(*) FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid "
                               "WHERE e.enrol = 'manual'")
        members = st.scalar("SELECT COUNT(*) FROM cohort_members")
        welcome = len(st.welcome_messages())
        moodle_ms = created * MS_PER_USER + enrolments * MS_PER_ENROLMENT + members * MS_PER_MEMBER
        return {"policy": policy, "teachers": created, "enrolments_per_teacher": enrolments / created,
                "members_per_teacher": members / created, "welcome_per_teacher": welcome / created,
                "roster_write_calls": out["roster"]["lms_calls"], "moodle_ms_per_teacher": moodle_ms / created,
                "errors": sum(len(o["errors"]) for o in out.values())}
    finally:
        handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = write_province(work / "province", teachers=args.teachers, seed=7)
        rows = [run(policy, files, work) for policy in ("manual", "self")]
    base, new = rows
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores, shared with other work)")
    print(f"{'policy':8} {'teachers':>8} {'enrol/teacher':>13} {'members/teacher':>15} {'welcome/teacher':>15} "
          f"{'roster calls':>12} {'est. Moodle ms/teacher':>22}")
    for r in rows:
        print(f"{r['policy']:8} {r['teachers']:8d} {r['enrolments_per_teacher']:13.2f} "
              f"{r['members_per_teacher']:15.2f} {r['welcome_per_teacher']:15.2f} {r['roster_write_calls']:12d} "
              f"{r['moodle_ms_per_teacher']:22.1f}")
    print(f"self / manual: enrolments {new['enrolments_per_teacher'] / base['enrolments_per_teacher']:.2f}x, "
          f"roster write calls {new['roster_write_calls'] / base['roster_write_calls']:.2f}x, "
          f"estimated Moodle time {new['moodle_ms_per_teacher'] / base['moodle_ms_per_teacher']:.2f}x "
          f"(= {base['moodle_ms_per_teacher'] / new['moodle_ms_per_teacher']:.2f}x the users/s)")
    print(f"target: enrolment calls per new teacher <= 5: {new['enrolments_per_teacher']:.2f} "
          f"({'met' if new['enrolments_per_teacher'] <= 5 else 'NOT met'})")
    if any(r["errors"] for r in rows):
        sys.exit("errors in the runs: " + ", ".join(f"{r['policy']}={r['errors']}" for r in rows))


if __name__ == "__main__":
    main()
