"""Benchmark: what the CLI imports to start one command (`python -X importtime -m creditbridge.cli.main ARGS`).

The CLI loads a flow's commands only when one of them is looked up (cli/main.py), so `sync roster --help` must
not pay for sync.service (openpyxl, requests, babel, the store's models) and a roster dry run for no other flow.
For each tree (this checkout, and `--baseline-tree DIR` holding an older `creditbridge/`, for example
`git archive main | tar -x -C DIR/creditbridge`), runs alternate and each prints the median of the summed
self import times, the modules loaded, and the modules one tree loads and the other does not. The same-run
baseline is the bare interpreter (`python -X importtime -c pass`).

    python bench/cli_import_time.py [--runs 5] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEADER = "身份证号,姓名,学校代码,学校名称,区县,地市,学段,学科,是否乡村教师,任职状态\n"


def _imports(argv: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """(summed self import time in µs, modules imported) of one child process."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:") and "self [us]" not in ln]
    return (sum(int(ln.split(":", 1)[1].split("|")[0]) for ln in lines),
            [ln.rsplit("|", 1)[1].strip() for ln in lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="A directory holding another creditbridge/ (put first on PYTHONPATH).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cli-import-time-"))
    roster = work / "roster.csv"
    roster.write_text(HEADER, encoding="utf-8")
    config = work / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(work / "reports").as_posix()}"\n', encoding="utf-8")
    commands = {
        "bare interpreter": ["-c", "pass"],
        "sync roster --help": ["-m", "creditbridge.cli.main", "sync", "roster", "--help"],
        "sync roster --dry-run (header-only roster)": ["-m", "creditbridge.cli.main", "--config", str(config),
                                                       "sync", "roster", str(roster), "--dry-run", "--json"],
    }
    base_env = {**os.environ, "CREDITBRIDGE_DATABASE_URL": f"sqlite:///{(work / 'store.db').as_posix()}"}
    trees = {"this tree": base_env}
    if args.baseline_tree is not None:
        trees["baseline tree"] = {**base_env, "PYTHONPATH": str(args.baseline_tree.resolve())}
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    for name, argv in commands.items():
        totals: dict[str, list[int]] = {t: [] for t in trees}
        loaded: dict[str, set[str]] = {}
        for _ in range(args.runs):
            for tree, env in trees.items():  # alternately, so both see the same load
                total, modules = _imports(argv, env)
                totals[tree].append(total)
                loaded[tree] = set(modules)
        for tree in trees:
            print(f"{name:<44} {tree:<13} median {statistics.median(totals[tree]) / 1000:6.0f} ms "
                  f"(min {min(totals[tree]) / 1000:.0f})  modules {len(loaded[tree])}")
        if len(trees) == 2:
            this, other = loaded["this tree"], loaded["baseline tree"]
            print(f"{'':<44} only this tree: {sorted(this - other) or '-'}; "
                  f"only baseline: {sorted(other - this) or '-'}")
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
