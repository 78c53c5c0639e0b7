"""The XLSX pre-read scan (input_limits.sheet_extent) of a synthetic sheet part, against main's scan in the same
run: what the hostile review's stricter pattern (references written otherwise go to a real parse) and the
long-text check cost on the usual layout. Usage: python bench/sheet_extent_scan.py [--rows N] [--base REF]"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import tempfile
import time
from pathlib import Path

from creditbridge import input_limits


def sheet(rows: int) -> bytes:
    parts = [f'<row r="{n}" spans="1:13">' + "".join(f'<c r="{chr(65 + i)}{n}" s="1" t="s"><v>{n * 13 + i}</v></c>'
                                                    for i in range(13)) + "</row>" for n in range(1, rows + 1)]
    return ('<?xml version="1.0"?><worksheet><sheetData>' + "".join(parts) + "</sheetData></worksheet>").encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--base", default="main", help="git ref whose input_limits.py is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    old_src = subprocess.run(["git", "-C", str(root), "show", f"{args.base}:input_limits.py"], check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base_input_limits.py"
        path.write_bytes(old_src)
        spec = importlib.util.spec_from_file_location("base_input_limits", path)
        assert spec is not None and spec.loader is not None
        base = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(base)
    xml = sheet(args.rows)
    best = {"base": float("inf"), "branch": float("inf")}
    for _ in range(args.repeat):
        for name, scan in (("base", lambda: base.sheet_extent(io.BytesIO(xml))),
                           ("branch", lambda: input_limits.sheet_extent(io.BytesIO(xml), max_text_bytes=16 << 20))):
            started = time.perf_counter()
            assert scan() == (args.rows, 13)
            best[name] = min(best[name], time.perf_counter() - started)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{len(xml) / (1 << 20):.0f} MB sheet part, {args.rows:,} rows x 13 cells; best of {args.repeat}: "
          f"{args.base} {best['base']:.2f} s, branch {best['branch']:.2f} s, "
          f"ratio {best['branch'] / best['base']:.2f}; load {load}")


if __name__ == "__main__":
    main()
