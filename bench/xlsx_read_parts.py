"""Benchmark: where reading an XLSX roster goes, part by part, in one process (CPU seconds of each part).

- the pre-read checks (`input_limits.check_xlsx`: zip directory, the sheet's extent scan, long texts);
- python-calamine unpacking the first sheet (`get_sheet_by_index`: inflate, XML, the whole cell rectangle);
- turning its rows into Python values (`iter_rows`);
against a baseline in the same run: a plain `csv` pass over the same teachers as GB18030 CSV.
The files are the ones `bench/dry_run_million.py` generates and keeps (run it first, or pass --out).

    python bench/xlsx_read_parts.py [--teachers 1000000] [--out /tmp/creditbridge-bench] [--repeat 2]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook

from creditbridge.input_limits import check_xlsx
from creditbridge.settings.model import InputLimits


def _cpu(f: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = f()
    return time.process_time() - started, result


def _count_rows(sheet: Any) -> int:
    return sum(1 for _ in sheet.iter_rows())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teachers", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/creditbridge-bench"))
    p.add_argument("--repeat", type=int, default=2, help="runs of each part, best kept")
    a = p.parse_args()
    folder = a.out / f"province-{a.teachers}-{a.seed}"
    roster, xlsx = folder / "roster.csv", folder / "roster.xlsx"
    if not xlsx.exists():
        raise SystemExit(f"{xlsx} is missing: run bench/dry_run_million.py --teachers {a.teachers} first")
    limits = InputLimits()
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    def plain_csv() -> None:
        with open(roster, encoding="gb18030", newline="") as f:
            for _row in csv.reader(f):
                pass

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for _ in range(a.repeat):
        keep("baseline: plain csv pass", _cpu(plain_csv)[0])
        keep("check_xlsx (pre-read scan)", _cpu(lambda: check_xlsx(xlsx, limits))[0])
        seconds, sheet = _cpu(lambda: CalamineWorkbook.from_path(xlsx).get_sheet_by_index(0))
        keep("python-calamine: unpack the sheet", seconds)
        keep("python-calamine: iter_rows", _cpu(partial(_count_rows, sheet))[0])
        del sheet
    base = best["baseline: plain csv pass"]
    print(f"{a.teachers:,} teachers, {xlsx.stat().st_size / 1e6:.1f} MB XLSX; best of {a.repeat}; load average "
          f"before {' '.join(load_before)}, after {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    for name, seconds in best.items():
        print(f"{name:<36} {seconds:6.2f} s CPU = {seconds / base:5.2f}x baseline")


if __name__ == "__main__":
    main()
