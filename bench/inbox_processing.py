"""Inbox processing: CPU per delivery of process_pending (chunks) against the per-delivery path, same run.

N deliveries are stored in the inbox of two identical stores (a mix like the plugin sends: course
completions, activity completions, revocations, grades, 5% repeats of an earlier fact under another
webhook id or a later revocation of it, 2% for a user the roster does not know, which get parked). One
store is processed one delivery per transaction (`process_pending_one_by_one`, the fallback path = the
old code), the other by `process_pending` in chunks. Prints, per backend: wall time, CPU of this process
and of the PostgreSQL backends serving it (from /proc), per delivery, and the ratio baseline / chunked.
Both must give the same counters (checked). Usage:
    python bench/inbox_processing.py [--deliveries 2000] [--chunk 200] [--no-sqlite] [--no-pg]

With --store-url (a PostgreSQL store set up by bench/continuous_latency.py --setup-only, e.g. 1,000,000
teachers): course completions like that benchmark's (teachers by Moodle user id, courses by Moodle course id)
for --deliveries random teachers are stored in its inbox and processed by `process_pending` in chunks of
--chunk, as a receiver's background batch takes them; prints deliveries/s, CPU per delivery (this process
and the database backends) and the time of each statement, then removes what it added (records, deliveries,
marks), so the same store measures again:
    python bench/inbox_processing.py --store-url postgresql+psycopg://.../cb_bench_cont_x --deliveries 5000 \
        --chunk 1000
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url

from creditbridge.records.id_number import check_digit
from creditbridge.settings import Settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, Teacher
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.payload import webhook_id
from creditbridge.webhooks.processing import IntakeResult, process_pending, process_pending_one_by_one

PG_ADMIN = os.environ.get("CREDITBRIDGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SITE = "http://moodle.example"
PROGRAMME = "sd-2022"
TEACHERS = 2000
COURSES = 40
TICKS = os.sysconf("SC_CLK_TCK")


def id_number(n: int) -> str:
    body = f"370102{1960 + n // 1000}0101{n % 1000:03d}"
    return body + check_digit(body)


def inbox(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for k in range(n):
        if out and rnd.random() < 0.05:  # the same fact again (a resend with a new id)
            again = dict(out[rnd.randrange(len(out))])
            again["objectid"] = 10_000_000 + k
            if again["event"] == "course_completed":  # its source ignores objectid and time: a repeat
                out.append(again)
            elif again["event"] == "activity_completion_updated" and again["completionstate"]:
                again["completionstate"], again["timecreated"] = 0, 1795385000 + k  # revoked later
                out.append(again)
            continue
        user = 1000 + rnd.randrange(TEACHERS) if rnd.random() >= 0.02 else 900_000 + k  # unknown -> parked
        course = rnd.randrange(COURSES)
        event = rnd.choices(["course_completed", "activity_completion_updated", "grade_updated"], [3, 6, 1])[0]
        p: dict[str, Any] = {
            "event": event, "eventname": "\\core\\event\\" + event, "objectid": k, "site": SITE,
            "user": {"id": user, "username": f"tch{user}", "idnumber": ""},
            "course": {"id": 100 + course, "idnumber": f"PD-{course:04d}"}, "activity": None,
            "completionstate": None, "grade": None, "grademax": None, "timespent": None,
            "timecreated": 1795385000 + k}
        if event != "course_completed":
            p["activity"] = {"cmid": 5000 + rnd.randrange(5), "idnumber": "", "modname": "page"}
            p["completionstate"] = rnd.choices([1, 2, 3, 0], [6, 2, 1, 1])[0]
            if event == "grade_updated":
                p["grade"], p["grademax"] = float(rnd.randrange(101)), 100.0
        out.append(p)
    return out


def fill(store: Store, deliveries: list[dict[str, Any]]) -> None:
    with store.session() as s:
        s.execute(insert(Teacher), [
            {"programme": PROGRAMME, "id_number": id_number(i), "name": f"T{i}", "school_code": "S1",
             "school_name": "S", "county": "C", "city": "J", "stage": "primary", "username": f"tch{1000 + i}",
             "moodle_user_id": 1000 + i} for i in range(TEACHERS)])
        s.execute(insert(CatalogCourse), [
            {"programme": PROGRAMME, "code": f"PD-{j:04d}", "title": f"Course {j}", "kind": "required",
             "hours": Decimal(j % 10 + 1), "moodle_course_id": 100 + j} for j in range(COURSES)])
        s.execute(insert(WebhookDelivery), [
            {"webhook_id": webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"]),
             "event": p["event"], "payload": p} for p in deliveries])


def backend_cpu(dbname: str | None) -> float:
    """CPU seconds of the PostgreSQL backends connected to `dbname` (their process title names it)."""
    if dbname is None:
        return 0.0
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if not cmd.startswith("postgres:") or f" {dbname} " not in cmd:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / TICKS


def measure(label: str, store: Store, dbname: str | None, run: Callable[[], IntakeResult], n: int
            ) -> tuple[IntakeResult, float]:
    wall0, cpu0, db0 = time.perf_counter(), time.process_time(), backend_cpu(dbname)
    out = run()
    wall, cpu, db = time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu(dbname) - db0
    per = (cpu + db) / n * 1000
    print(f"  {label:<22} wall {wall:7.2f} s   cpu {cpu / n * 1000:6.3f} ms/delivery   "
          f"db backends {db / n * 1000:6.3f} ms/delivery   total {per:6.3f} ms   {out.as_json()}", flush=True)
    return out, per


def bench(kind: str, urls: list[str], n: int, chunk: int) -> None:
    deliveries = inbox(n)
    stores = [open_store(u) for u in urls]
    try:
        for st in stores:
            fill(st, deliveries)
        names = [make_url(u).database if kind == "postgresql" else None for u in urls]
        settings = [Settings.model_validate({"database": {"url": u}}) for u in urls]
        print(f"{kind}: {len(deliveries)} deliveries, {TEACHERS} teachers, {COURSES} courses", flush=True)
        base, base_cpu = measure("one by one (baseline)", stores[0], names[0],
                                 lambda: process_pending_one_by_one(settings[0], stores[0]), len(deliveries))
        fast, fast_cpu = measure(f"chunks of {chunk}", stores[1], names[1],
                                 lambda: process_pending(settings[1], stores[1], chunk_size=chunk), len(deliveries))
        assert base == fast, (base, fast)
        print(f"  ratio baseline/chunked (CPU incl. db): {base_cpu / fast_cpu:5.1f}x", flush=True)
    finally:
        for st in stores:
            st.dispose()


class StatementTimes:
    """Wall time per statement shape (its first 90 characters), from SQLAlchemy's cursor events."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.times: dict[str, list[float]] = {}
        self._t0: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._t0.append(time.perf_counter())

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        key = " ".join(statement.split())[:90]
        self.times.setdefault(key, []).append(time.perf_counter() - self._t0.pop())

    def report(self, chunks: int) -> None:
        for key, ts in sorted(self.times.items(), key=lambda kv: -sum(kv[1])):
            print(f"    {sum(ts):7.3f} s  {len(ts):5d}x  {sum(ts) / max(chunks, 1) * 1000:8.1f} ms/chunk  {key}",
                  flush=True)


def on_store(url: str, n: int, chunk: int, seed: int) -> None:
    """The receivers' processing on a big store (see the module's doc)."""
    store = open_store(url)
    engine = store.engine
    site = f"http://bench-inbox-{uuid.uuid4().hex[:8]}"
    try:
        with engine.connect() as c:
            teachers = c.execute(text("SELECT count(*) FROM teacher")).scalar_one()
            uids = [r[0] for r in c.execute(text(
                "SELECT moodle_user_id FROM teacher TABLESAMPLE SYSTEM (1) REPEATABLE (:s)"
                " WHERE moodle_user_id IS NOT NULL LIMIT :n"), {"s": seed, "n": n})]
            cids = [r[0] for r in c.execute(text(
                "SELECT moodle_course_id FROM catalog_course WHERE moodle_course_id IS NOT NULL"))]
        rnd = random.Random(seed)
        deliveries = [{"event": "course_completed", "eventname": "\\core\\event\\course_completed",
                       "objectid": k, "site": site, "user": {"id": uid, "username": f"u{uid}", "idnumber": ""},
                       "course": {"id": rnd.choice(cids), "idnumber": ""}, "activity": None,
                       "completionstate": None, "grade": None, "grademax": None, "timespent": None,
                       "timecreated": 1664582400 + k} for k, uid in enumerate(uids)]
        with store.session() as s:
            s.execute(insert(WebhookDelivery), [
                {"webhook_id": webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"],
                                          p["user"]["id"]), "event": p["event"], "payload": p} for p in deliveries])
        wids = [webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"])
                for p in deliveries]
        settings = Settings.model_validate({"database": {"url": url}, "sync": {"programme": "sd-2022"}})
        name = make_url(url).database
        print(f"{teachers:,} teachers stored; {len(deliveries)} deliveries, chunks of {chunk}", flush=True)
        timer = StatementTimes(engine)
        wall0, cpu0, db0 = time.perf_counter(), time.process_time(), backend_cpu(name)
        out = {"processed": 0, "records": 0}
        for k in range(0, len(wids), chunk):  # as the receivers' background thread: by id, one chunk each
            got = process_pending(settings, store, webhook_ids=wids[k:k + chunk], chunk_size=chunk)
            out = {"processed": out["processed"] + got.processed, "records": out["records"] + got.records}
        wall, cpu, db = time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu(name) - db0
        event.remove(engine, "before_cursor_execute", timer._before)
        event.remove(engine, "after_cursor_execute", timer._after)
        chunks = -(-len(wids) // chunk)
        print(f"  {out}: wall {wall:.2f} s = {len(wids) / wall:.0f} deliveries/s; cpu {cpu / n * 1000:.3f} ms/delivery,"
              f" db backends {db / n * 1000:.3f} ms/delivery; per statement (wall, all chunks):", flush=True)
        timer.report(chunks)
    finally:
        with store.session() as s:  # leave the store as it was, for the next measurement
            s.execute(text("DELETE FROM learning_record WHERE source LIKE :p"), {"p": f"moodle:{site}:%"})
            s.execute(text("DELETE FROM webhook_delivery WHERE payload->>'site' = :s"), {"s": site})
            s.execute(text("DELETE FROM credit_mark"))
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="100 to 50,000 (default 2,000)")
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--store-url", help="PostgreSQL store of bench/continuous_latency.py --setup-only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = max(100, min(args.deliveries, 50_000))
    logging.basicConfig(level=logging.ERROR)
    print(f"load average at start: {open('/proc/loadavg').read().strip()}", flush=True)
    if args.store_url:
        on_store(args.store_url, n, args.chunk, args.seed)
        print(f"load average at end: {open('/proc/loadavg').read().strip()}", flush=True)
        return
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            bench("sqlite", [f"sqlite:///{Path(tmp) / 'a.db'}", f"sqlite:///{Path(tmp) / 'b.db'}"], n, args.chunk)
    if not args.no_pg:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        names = [f"cb_inbox_{uuid.uuid4().hex[:10]}" for _ in range(2)]
        try:
            with admin.connect() as c:
                for name in names:
                    c.execute(text(f'CREATE DATABASE "{name}"'))
            urls = [make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False) for name in names]
            bench("postgresql", urls, n, args.chunk)
        finally:
            with admin.connect() as c:
                for name in names:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"load average at end: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
