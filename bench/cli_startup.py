"""CLI start-up: CPU time (user + sys, the least load-sensitive figure on a shared machine) of `creditbridge --help`
and of loading each flow's command module, each in a fresh interpreter, the minimum of N runs.

The baseline, measured in the same run: importing the CLI's core (`creditbridge.cli.main`, no command module).
`--against DIR` also measures another tree (a folder holding a `creditbridge` checkout, e.g. made with
`git archive main --prefix=creditbridge/ | tar -x -C DIR`), alternating with this one so both see the same load.

    python bench/cli_startup.py [--runs 7] [--against DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

from creditbridge.cli.main import COMMAND_MODULES

HELP = ("import sys\nsys.argv = ['creditbridge', '--help']\nfrom creditbridge.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n")


def cases() -> dict[str, str]:
    out = {"baseline: cli core": "import creditbridge.cli.main", "creditbridge --help": HELP}
    for module in sorted(set(COMMAND_MODULES.values())):
        names = ", ".join(n for n, m in COMMAND_MODULES.items() if m == module)
        out[names] = f"import creditbridge.cli.main\nimport {module}"
    return out


def cpu_seconds(code: str, pythonpath: str | None) -> float:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--against", metavar="DIR", help="Also measure the creditbridge tree in DIR (PYTHONPATH=DIR).")
    args = ap.parse_args()
    trees = {"this": None, **({"against": args.against} if args.against else {})}
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load: {f.read().strip()}; {args.runs} runs each, minimum CPU seconds")
    base: dict[str, float] = {}
    for name, code in cases().items():
        seen: dict[str, list[float]] = {t: [] for t in trees}
        for _ in range(args.runs):
            for t, path in trees.items():
                seen[t].append(cpu_seconds(code, path))
        best = {t: min(v) for t, v in seen.items()}
        base = base or best
        figures = "  ".join(f"{t} {best[t] * 1000:5.0f} ms ({best[t] / base[t]:.2f}x base)" for t in trees)
        ratio = f"  this/against {best['this'] / best['against']:.2f}" if args.against else ""
        print(f"{name:40} {figures}{ratio}", flush=True)


if __name__ == "__main__":
    main()
