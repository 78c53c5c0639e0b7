"""Loopback load on the webhook receiver under gunicorn: signed deliveries (10% duplicates), on SQLite and
PostgreSQL, against a bare Flask endpoint under the same gunicorn and workers in the same run.

    python bench/webhooks_load.py [--deliveries 5000] [--threads 16] [--workers 2] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "webhooks"))
from webhook_helpers import SECRET, payload, signed

from creditbridge.store import open_store
from creditbridge.store.models.intake import WebhookDelivery

PG_ADMIN = os.environ.get("CREDITBRIDGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=env, cwd=Path(__file__).resolve().parent)
    for _ in range(200):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start: {argv}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def load(url: str, bodies: list[tuple[bytes, dict[str, str]]], threads: int) -> dict[str, float]:
    lat: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    it = iter(bodies)

    def worker() -> None:
        http = requests.Session()
        mine, mycodes = [], {}
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                break
            t0 = time.perf_counter()
            r = http.post(url, data=item[0], headers=item[1], timeout=30)
            mine.append(time.perf_counter() - t0)
            mycodes[r.status_code] = mycodes.get(r.status_code, 0) + 1
        with lock:
            lat.extend(mine)
            for k, v in mycodes.items():
                codes[k] = codes.get(k, 0) + v

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return {"wall": wall, "per_s": len(bodies) / wall, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
            "codes": codes}


def make_bodies(n: int) -> list[tuple[bytes, dict[str, str]]]:
    uniq = int(n * 0.9)
    out = [signed(payload(userid=10_000 + i, objectid=i + 1, timecreated=1795385000 + i)) for i in range(uniq)]
    rng = random.Random(1)
    out += [out[rng.randrange(uniq)] for _ in range(n - uniq)]
    rng.shuffle(out)
    return out


def run_receiver(name: str, db_url: str, bodies, args) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "creditbridge.toml"
    inline = "true" if args.inline else "false"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\nprocess_inline = {inline}\n')
    port = free_port()
    proc = start([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "serve", "--host",
                  "127.0.0.1", "--port", str(port), "--workers", str(args.workers)], port)
    try:
        res = load(f"http://127.0.0.1:{port}/webhooks/moodle", bodies, args.threads)
    finally:
        stop(proc)
    store = open_store(db_url, migrate=False)
    with store.session() as s:
        stored = s.scalar(select(func.count()).select_from(WebhookDelivery))
    store.dispose()
    res["stored"] = stored
    res["stored_per_s"] = stored / res["wall"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deliveries", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--inline", action=argparse.BooleanOptionalAction, default=False,
                    help="process into learning records inside the request (default: inbox only)")
    args = ap.parse_args()
    bodies = make_bodies(args.deliveries)
    print(f"{args.deliveries} signed deliveries ({args.deliveries - int(args.deliveries * 0.9)} duplicates), "
          f"{args.threads} client threads, gunicorn --workers {args.workers}, loopback, "
          f"process_inline={args.inline}")

    port = free_port()
    proc = start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                  "webhooks_bare:app"], port)
    try:
        bare = load(f"http://127.0.0.1:{port}/webhooks/moodle", bodies, args.threads)
    finally:
        stop(proc)
    print(f"bare Flask 200      : {bare['per_s']:8.0f} req/s  "
          f"p50 {bare['p50_ms']:6.1f} ms  p99 {bare['p99_ms']:6.1f} ms")

    tmp = Path(tempfile.mkdtemp())
    results = {"sqlite": run_receiver("sqlite", f"sqlite:///{tmp / 'bench.db'}", bodies, args)}
    if not args.no_pg:
        name = f"cb_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            open_store(url).dispose()
            results["postgresql"] = run_receiver("postgresql", url, bodies, args)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    for name, r in results.items():
        print(f"receiver {name:<11}: {r['stored_per_s']:8.0f} stored/s ({r['per_s']:.0f} req/s, "
              f"{r['stored']} stored)  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"ratio to bare {r['per_s'] / bare['per_s']:.2f}  codes {r['codes']}")


if __name__ == "__main__":
    main()
