"""Benchmark: `creditbridge report` (report_data + XLSX + HTML) for a province of N teachers on SQLite.

Prints wall time and peak memory (max RSS) of building the report, and, as the baseline measured in the same
run, of merely reading the same teacher and credit_result rows (the floor any report must pay). Each runs
in its own child process so each peak is its own. The store is generated once per run in a temp folder.

    python bench/report_build.py [--teachers 200000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path


def seed(url: str, n: int) -> None:
    from sqlalchemy import insert

    from creditbridge.records.id_number import check_digit
    from creditbridge.store import open_store
    from creditbridge.store.models.core import Teacher
    from creditbridge.store.models.credits import CreditResult

    store = open_store(url)
    now = datetime(2022, 12, 1, tzinfo=UTC)
    batch_t, batch_r = [], []
    with store.engine.begin() as c:
        for i in range(n):
            first17 = f"370102{1970 + (i // 336_000) % 40}{(i // 28_000) % 12 + 1:02d}{(i // 1000) % 28 + 1:02d}" \
                      f"{i % 1000:03d}"
            idn = first17 + check_digit(first17)
            school = i % 4000  # 4,000 schools in 140 counties in 16 cities, nested as in a province
            county, city = school % 140, school % 140 % 16
            batch_t.append({"programme": "sd-2022", "id_number": idn, "name": f"教师{i}", "school_code": f"S{school}",
                            "school_name": f"第{school}学校", "county": f"县{county}", "city": f"市{city}",
                            "stage": "primary", "subject": "math", "status": "active", "updated_at": now})
            if i % 10:  # one in ten not evaluated yet
                credits = 18 + i % 11
                batch_r.append({"programme": "sd-2022", "teacher": idn, "role": "teacher", "year": 2022,
                                "hours": credits, "credits": credits, "points": None, "passed": credits >= 24,
                                "components": {}, "reasons": [], "reasons_zh": [], "rule_version": "1",
                                "rule_hash": "r" * 64, "result_hash": "h" * 64, "evaluated_at": now})
            if len(batch_t) >= 20_000:
                c.execute(insert(Teacher), batch_t)
                if batch_r:
                    c.execute(insert(CreditResult), batch_r)
                batch_t, batch_r = [], []
        if batch_t:
            c.execute(insert(Teacher), batch_t)
        if batch_r:
            c.execute(insert(CreditResult), batch_r)
    store.dispose()


def child(mode: str, url: str, out: Path) -> None:
    from sqlalchemy import select

    from creditbridge.settings import load_settings
    from creditbridge.store import open_store
    from creditbridge.store.models.core import Teacher
    from creditbridge.store.models.credits import CreditResult

    store = open_store(url, migrate=False)
    settings = load_settings(None, env={}, overrides={"database": {"url": url}})
    start = time.perf_counter()
    if mode == "report":
        from creditbridge.reports.build import report_data, write_files

        data = report_data(settings, store, today=date(2022, 12, 20))
        paths = write_files(data, out)
        size = paths.xlsx.stat().st_size + paths.html.stat().st_size
    else:
        with store.session() as s:
            size = sum(1 for _ in s.execute(select(Teacher.id_number, Teacher.school_code, Teacher.county,
                                                   Teacher.city, Teacher.status)))
            size += sum(1 for _ in s.execute(select(CreditResult.teacher, CreditResult.credits,
                                                    CreditResult.passed)))
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": round(elapsed, 2), "peak_mb": round(peak_mb, 1), "size": size}))
    store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teachers", type=int, default=200_000)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--child", choices=["report", "read"])
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.url, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        seed(url, args.teachers)
        print(f"seeded {args.teachers} teachers in {time.perf_counter() - t0:.1f}s")
        results = {}
        for mode in ("read", "report"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--url", url, "--out", str(args.out)],
                                 capture_output=True, text=True, check=True)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    r, b = results["report"], results["read"]
    print(f"read rows (baseline): {b['seconds']:.2f}s, peak {b['peak_mb']:.0f} MB")
    print(f"report (data + XLSX + HTML): {r['seconds']:.2f}s, peak {r['peak_mb']:.0f} MB, "
          f"files {r['size'] / 1e6:.1f} MB")
    print(f"ratio to baseline: time x{r['seconds'] / max(b['seconds'], 1e-9):.1f}, "
          f"memory x{r['peak_mb'] / max(b['peak_mb'], 1e-9):.1f}")


if __name__ == "__main__":
    main()
