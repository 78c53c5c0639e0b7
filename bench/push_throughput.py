"""Benchmark: push throughput to registry-sim over loopback (records/s).

Runs `creditbridge registry-sim` as its own process (so client and server do not share a GIL), fills a
fresh SQLite state store with N teachers' credit results, and times `push` end to end: outbox build,
marking batches sent, signed HTTP batches, recording every acknowledgement. The baseline, in the same
run, posts the same records as pre-signed batches straight to the simulator (no outbox, no state
store): the HTTP + simulator ceiling. Target (issue 7): >= 2,000 records/s.

    python bench/push_throughput.py [--records 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import Table

from creditbridge.connector.registry.base import Submission
from creditbridge.connector.registry.rest import RestTarget
from creditbridge.outbox.service import push
from creditbridge.records.id_number import check_digit
from creditbridge.settings import load_settings
from creditbridge.store import Store, open_store
from creditbridge.store.models import Base
from creditbridge.store.models.core import Teacher

SECRET = "bench-secret"


def id_number(i: int) -> str:
    first17 = f"370102{1970 + (i // 336_000) % 40}{(i // 28_000) % 12 + 1:02d}{(i // 1000) % 28 + 1:02d}{i % 1000:03d}"
    return first17 + check_digit(first17)


def credit_table(store: Store) -> Table:
    """The mappings flow's table when installed; a stand-in with its documented columns otherwise."""
    from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, Numeric, String

    if "credit_result" in Base.metadata.tables:
        return Base.metadata.tables["credit_result"]
    t = Table("credit_result", MetaData(), Column("id", Integer, primary_key=True), Column("programme", String(40)),
              Column("teacher", String(64)), Column("role", String(20)), Column("year", Integer),
              Column("hours", Numeric(8, 2)), Column("credits", Numeric(8, 2)), Column("points", Numeric(8, 2)),
              Column("passed", Boolean), Column("components", JSON), Column("reasons", JSON),
              Column("reasons_zh", JSON), Column("rule_version", String(40)), Column("rule_hash", String(64)),
              Column("result_hash", String(64)), Column("evaluated_at", DateTime(timezone=True)))
    t.metadata.create_all(store.engine)
    return t


def fill(store: Store, n: int) -> None:
    from sqlalchemy import insert

    t = credit_table(store)
    now = datetime(2022, 12, 1, tzinfo=UTC)
    with store.session() as s:
        s.execute(insert(Teacher), [
            {"programme": "sd-2022", "id_number": id_number(i), "name": f"教师{i}", "school_code": f"S{i % 500:04d}",
             "school_name": f"第{i % 500}中学", "county": "历下区", "city": "济南市", "stage": "primary",
             "subject": "math"} for i in range(n)])
        rows = [{"programme": "sd-2022", "teacher": id_number(i), "role": "teacher", "year": 2022, "hours": 50,
                 "credits": 5, "points": None, "passed": True, "components": {}, "reasons": [], "reasons_zh": [],
                 "rule_version": "1", "rule_hash": "r" * 64, "evaluated_at": now,
                 "result_hash": hashlib.sha256(f"{i}".encode()).hexdigest()} for i in range(n)]
        s.execute(insert(t), [{k: v for k, v in r.items() if k in t.c} for r in rows])


def start_sim(db: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "registry-sim", "--port", str(port),
                             "--db", str(db), "--secret", SECRET, "--max-inflight", "64"],
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(f"{url}/api/v1/health", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("registry-sim did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=500)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        # Baseline: the same records, pre-built, straight to a fresh simulator.
        proc, url = start_sim(tmpd / "baseline.db")
        try:
            settings = load_settings(None, env={}, overrides={"registry": {
                "url": url, "secret": SECRET, "batch_size": a.batch}})
            target = RestTarget(settings.registry)
            subs = [Submission(key=f"baseline-{i:09d}", action="submit", record={
                "id_number": id_number(i), "name": f"教师{i}", "programme_code": "sd-2022", "year": 2022,
                "version": 1, "hours": 50.0, "credits": 5.0, "result": "passed"}) for i in range(a.records)]
            t0 = time.perf_counter()
            for k in range(0, len(subs), a.batch):
                target.submit(subs[k:k + a.batch])
            base_s = time.perf_counter() - t0
            target.close()
        finally:
            proc.terminate()
            proc.wait()
        # The real thing: outbox build + push through the state store.
        proc, url = start_sim(tmpd / "sim.db")
        try:
            store = open_store(f"sqlite:///{tmpd / 'state.db'}")
            fill(store, a.records)
            settings = load_settings(None, env={}, overrides={"registry": {
                "url": url, "secret": SECRET, "batch_size": a.batch}})
            t0 = time.perf_counter()
            result = push(settings, store)
            push_s = time.perf_counter() - t0
            counted = requests.get(f"{url}/api/v1/credit-records", params={"limit": 1}, timeout=30).json()["counts"]
            store.dispose()
        finally:
            proc.terminate()
            proc.wait()
    assert result.acknowledged == a.records, result
    assert counted.get("active") == a.records, counted
    print(f"records             : {a.records:,} (batches of {a.batch}), cpus {os.cpu_count()}")
    print(f"push (outbox+HTTP)  : {push_s:.2f} s = {a.records / push_s:,.0f} records/s")
    print(f"baseline (HTTP only): {base_s:.2f} s = {a.records / base_s:,.0f} records/s")
    print(f"push / baseline     : {push_s / base_s:.2f}x the time")
    print(f"target >= 2,000/s   : {'OK' if a.records / push_s >= 2000 else 'MISSED'}")
    print(json.dumps({"push_records_per_s": round(a.records / push_s), "baseline_records_per_s":
                      round(a.records / base_s)}))


if __name__ == "__main__":
    main()
