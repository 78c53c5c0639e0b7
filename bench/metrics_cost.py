"""What the Prometheus metrics cost: the counter on the receiver's hot path, and a scrape of the store figures.

    python bench/metrics_cost.py [--calls 200000] [--rows 50000] [--scrapes 20]

1. Per answer, the receiver already counted in memory (a lock and a collections.Counter: the baseline); it now
   also increments `creditbridge_webhook_deliveries_total` in prometheus-client's multiprocess mode (an mmap'd
   file, as under `creditbridge serve`). Both timed over --calls answers in this process; the ratio is to the
   baseline.
2. A scrape's store figures on a SQLite store holding --rows inbox deliveries: computed (metrics.cache_seconds
   = 0) and from the cache (the default 10 s), --scrapes each; the ratio is computed / cached.

Bounded: --calls and --scrapes fixed counts, --rows rows inserted once in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# Multiprocess mode is chosen when prometheus-client is imported: the directory must be set before that.
_DIR = tempfile.mkdtemp(prefix="cb-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DIR
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from creditbridge.metrics import build_registry, count_delivery  # noqa: E402
from creditbridge.store import open_store  # noqa: E402
from creditbridge.store.models.intake import WebhookDelivery  # noqa: E402


def hot_path(calls: int) -> tuple[float, float]:
    lock, counts = threading.Lock(), Counter[str]()
    start = time.perf_counter()
    for _ in range(calls):
        with lock:
            counts["accepted"] += 1
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        with lock:
            counts["accepted"] += 1
        count_delivery("accepted")
    return baseline, time.perf_counter() - start


def scrape(rows: int, scrapes: int) -> tuple[float, float]:
    # Not inside the multiprocess directory: the collector reads every *.db file there as counters.
    db = Path(tempfile.mkdtemp(prefix="cb-bench-store-")) / "bench.sqlite"
    store = open_store(f"sqlite:///{db}")
    now = datetime.now(UTC)
    with store.session() as s:
        s.execute(insert(WebhookDelivery), [
            {"webhook_id": f"msg_{n:040x}", "event": "course_completed", "payload": {"n": n},
             "state": "pending" if n % 10 else "parked", "received_at": now} for n in range(rows)])
    timings = []
    for cache_seconds in (0.0, 10.0):
        registry = build_registry(lambda: store, cache_seconds)
        generate_latest(registry)  # warm: the first computation fills the cache
        start = time.perf_counter()
        for _ in range(scrapes):
            generate_latest(registry)
        timings.append((time.perf_counter() - start) / scrapes)
    store.dispose()
    shutil.rmtree(db.parent)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3]
    baseline, with_metric = hot_path(args.calls)
    print(f"hot path, {args.calls} answers: baseline {baseline / args.calls * 1e6:.2f} µs/answer, with the "
          f"multiprocess counter {with_metric / args.calls * 1e6:.2f} µs/answer, "
          f"ratio {with_metric / baseline:.1f}x (+{(with_metric - baseline) / args.calls * 1e6:.2f} µs)")
    computed, cached = scrape(args.rows, args.scrapes)
    print(f"scrape, {args.rows} inbox rows: computed {computed * 1000:.1f} ms, cached {cached * 1000:.2f} ms, "
          f"ratio computed/cached {computed / cached:.0f}x")
    print(f"load average at start: {' '.join(load)} (2 cores, shared with other work)")
    shutil.rmtree(_DIR)


if __name__ == "__main__":
    main()
