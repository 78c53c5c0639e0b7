"""Benchmark: the careless export of issue #14 item 12 — a roster of 1,000,000 rows in which only 21,000
ID numbers are distinct (each on ~48 rows). `creditbridge sync roster --dry-run --json` runs in a child
process; its wall time, CPU time, peak RSS and output size are reported. Before the fix: 106 s of CPU,
3.65 GB, hundreds of MB of JSON; the duplicate bookkeeping is now linear and the error list bounded
(limits.max_errors in detail, errors_omitted for the rest).

    python bench/roster_duplicates.py [--rows 1000000] [--distinct 21000] [--out bench/out] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from creditbridge.records.id_number import check_digit

COMMON = ["370102001", "一中", "历下区", "济南市", "初中", "数学", "否", "在职"]
HEADERS = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师", "任职状态"]


def _id(n: int) -> str:
    first17 = f"370102{1960 + n // 1000 % 40}0101{n % 1000:03d}"
    return first17 + check_digit(first17)


def write_roster(path: Path, rows: int, distinct: int) -> Path:
    if path.exists():
        return path
    ids = [_id(i) for i in range(distinct)]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        for r in range(rows):
            w.writerow([ids[r % distinct], f"教师{r}", *COMMON])
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--distinct", type=int, default=21_000)
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    roster = write_roster(a.out / f"duplicates-{a.rows}-{a.distinct}.csv", a.rows, a.distinct)
    config = a.out / "duplicates.toml"
    config.write_text(f'[sync]\nreport_dir = "{(a.out / "reports").as_posix()}"\nusername_key = "bench"\n',
                      encoding="utf-8")
    env = {**os.environ, "CREDITBRIDGE_DATABASE_URL": f"sqlite:///{(a.out / 'duplicates.db').resolve()}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "sync", "roster",
                             str(roster), "--dry-run", "--json"], env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    doc = json.loads(out)
    result = {"rows": a.rows, "distinct": a.distinct, "exit": os.waitstatus_to_exitcode(status),
              "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "max_rss_mb": round(usage.ru_maxrss / 1024, 1), "stdout_bytes": len(out.encode()),
              "errors_listed": len(doc["errors"]), "errors_omitted": doc["errors_omitted"]}
    print(json.dumps(result) if a.json else "\n".join(f"{k:>15}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
