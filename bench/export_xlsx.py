"""Benchmark: the provincial import file (XLSX, openpyxl write-only) for 1,000,000 credit records.

Prints wall time and peak memory (max RSS) of the XLSX export, and of a plain csv.writer pass over the
same rows in the same run as the baseline. Each runs in its own child process so each peak is its own.
Targets (issue 7): <= 120 s and <= 1 GB for the XLSX export.

    python bench/export_xlsx.py [--rows 1000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def rows(n: int) -> Iterator[list[Any]]:
    from creditbridge.connector.registry.base import Submission
    from creditbridge.connector.registry.file import row_of
    from creditbridge.records.id_number import check_digit

    for i in range(n):
        birth = f"{1970 + (i // 336_000) % 40}{(i // 28_000) % 12 + 1:02d}{(i // 1000) % 28 + 1:02d}"
        first17 = f"370102{birth}{i % 1000:03d}"
        record = {"id_number": first17 + check_digit(first17), "name": f"教师{i}", "school_code": f"S{i % 2000:04d}",
                  "school_name": f"第{i % 2000}中学", "programme_name": "山东省2022年中小学教师全员培训",
                  "programme_code": "sd-2022", "year": 2022, "category": "teacher_training",
                  "hours": 50.0 + i % 7, "credits": 5.0, "result": "passed" if i % 10 else "failed",
                  "provider": "creditbridge", "start_date": "2022-01-01", "end_date": "2022-12-31", "version": 1}
        yield row_of(Submission(key=f"k{i}", action="submit", record=record))


def child(mode: str, n: int, out: Path) -> None:
    from creditbridge.connector.registry.file import write_import_file

    t0 = time.perf_counter()
    written = write_import_file(rows(n), out / f"export-{n}.{mode}", mode)
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "rows": written, "seconds": round(elapsed, 2), "peak_mb": round(peak_mb, 1),
                      "bytes": (out / f"export-{n}.{mode}").stat().st_size}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    p.add_argument("--child", choices=["xlsx", "csv"])
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.child:
        child(a.child, a.rows, a.out)
        return
    results = {}
    for mode in ("csv", "xlsx"):
        r = subprocess.run([sys.executable, __file__, "--child", mode, "--rows", str(a.rows), "--out", str(a.out)],
                           capture_output=True, text=True, check=True)
        results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    x, c = results["xlsx"], results["csv"]
    print(f"rows                : {x['rows']:,}")
    print(f"xlsx export         : {x['seconds']:.1f} s, peak RSS {x['peak_mb']:.0f} MB, {x['bytes'] / 1e6:.0f} MB file")
    print(f"csv baseline        : {c['seconds']:.1f} s, peak RSS {c['peak_mb']:.0f} MB, {c['bytes'] / 1e6:.0f} MB file")
    print(f"xlsx / csv time     : {x['seconds'] / c['seconds']:.2f}x")
    print(f"xlsx rows per second: {x['rows'] / x['seconds']:,.0f}")
    print(f"targets             : time <= 120 s {'OK' if x['seconds'] <= 120 else 'MISSED'}, "
          f"memory <= 1024 MB {'OK' if x['peak_mb'] <= 1024 else 'MISSED'}")


if __name__ == "__main__":
    main()
