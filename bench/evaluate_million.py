"""Benchmark: credit evaluation of 1,000,000 teachers × 12 learning records (sd-2022) on SQLite and PostgreSQL.

    python bench/evaluate_million.py                       # 1M teachers, both backends
    python bench/evaluate_million.py --teachers 100000 --backend sqlite
    python bench/evaluate_million.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Loading (not timed) uses fast bulk inserts: executemany of plain tuples on SQLite, COPY on PostgreSQL
(a scratch database is created and dropped). Then, each in a fresh child process so that its peak
resident memory (getrusage ru_maxrss of that child) belongs to that step alone:
  - baseline: a plain streamed SELECT of every learning record of the programme (no evaluation);
  - evaluate: `evaluate_store(settings, store, programme="sd-2022")`, results written to credit_result;
  - re-run with nothing changed (every stored result stands: its input fingerprint is unchanged);
  - re-run after 1 % of the teachers got one more passed record (added untimed): only they are evaluated.
Issue 16 (incremental evaluation, marks written by triggers):
  - the load is timed (it goes through the credit_mark triggers); with --trigger-cost the same load runs again
    into a scratch store with the triggers dropped, so the triggers' share of the load is printed;
  - the first full evaluation also clears the marks of the bulk load;
  - incremental with nothing marked (target ≤ 2 s), and after 1 % of the teachers got one more record
    (target ≤ 5 % of the full evaluation's time); both ratios to the full evaluation of the same run.
Prints wall and CPU seconds (CPU: this process and its workers; the machine is shared, so wall time depends on
the load average, printed too), peak RSS, throughput and the ratio to the baseline. Target: ≤ 60 s and ≤ 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROGRAMME = "sd-2022"
DEFAULT_PG = os.environ.get("CREDITBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHECK = "10X98765432"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
TOPICS = ["class-management", "mental-health", "family-education", "steam", "research-methods", "labour", "safety",
          "pbl", "big-unit"]
STAGES = [("初中", "数学", "M-MATH"), ("小学", "语文", "P-CHN"), ("高中", "物理", "H-PHY"), ("初中", "英语", "M-ENG")]


def id_number(n: int) -> str:
    """A valid, distinct ID number for every n < 10,080,000 (birth date and sequence spread n)."""
    first = f"370102{1970 + (n // 336000) % 30:04d}{1 + (n // 28000) % 12:02d}{1 + (n // 1000) % 28:02d}{n % 1000:03d}"
    return first + CHECK[sum(int(c) * w for c, w in zip(first, WEIGHTS, strict=True)) % 11]


def catalog_rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for stage, subject, tag in STAGES:
        for i in range(1, 13):
            rows.append((f"SD22-L-{tag}-{i:03d}", "lesson_case", None, "online", 2, stage, subject, "济南市"))
        for i in range(1, 4):
            rows.append((f"SD22-S-{tag}-{i:02d}", "elective", "subject", "online", 2, stage, subject, None))
    rows += [("SD22-ETH-01", "required", "ethics", "online", 2, None, None, None),
             ("SD22-ETH-02", "required", "ethics", "online", 2, None, None, None)]
    for topic in ["ethics", *TOPICS]:
        for i in range(1, 9):
            rows.append((f"SD22-E-{topic.upper()}-{i:02d}", "elective", topic, "online", 1 + i % 4, None, None, None))
    return rows


def generate(url: str, teachers: int, per_teacher: int, seed: int) -> dict[str, int]:
    """Bulk-load catalog, teachers, school topics, assignments and learning records (not timed)."""
    from creditbridge.store import open_store

    store = open_store(url)
    rnd = random.Random(seed)
    pg = store.is_postgres
    cat = catalog_rows()
    schools = max(1, teachers // 50)
    school_topics = {s: ["ethics", *rnd.sample(TOPICS, 5)] for s in range(schools)}
    now = datetime.now(UTC)
    counts = {"teachers": 0, "records": 0, "assignments": 0}
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()

        def put(table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            if not rows:
                return
            if pg:
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
            else:
                cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                rows)

        ts = (lambda d: d) if pg else (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
        put("catalog_course", ("programme", "code", "title", "kind", "topic", "mode", "hours", "stage", "subject",
                               "city", "updated_at"),
            [(PROGRAMME, c[0], c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], ts(now)) for c in cat])
        put("school_topic", ("programme", "school_code", "topic"),
            [(PROGRAMME, f"S{s:06d}", t) for s, ts_ in school_topics.items() for t in ts_])
        electives = {t: [c[0] for c in cat if c[2] == t] for t in ["ethics", *TOPICS]}
        start = datetime(2022, 8, 1, tzinfo=UTC)
        # Timestamps from a precomputed pool: formatting 12M datetimes would dominate the load.
        stamps = [ts(start + timedelta(days=rnd.randint(-5, 160), minutes=rnd.randint(0, 1440))) for _ in range(4096)]
        # per school: the courses a teacher picks from (its topics, plus 10 % subject and 5 % unchosen ones)
        picks: dict[int, list[str]] = {}
        for s_, chosen in school_topics.items():
            inside = [c for t in chosen for c in electives[t]]
            outside = [c for t in TOPICS if t not in chosen for c in electives[t]]
            picks[s_] = inside * 17 + outside * 1
        subject_courses = {tag: [f"SD22-S-{tag}-{i:02d}" for i in range(1, 4)] for _, _, tag in STAGES}
        batch = 20000
        src = 0
        now_s = ts(now)
        for lo in range(0, teachers, batch):
            tr, ar, rr = [], [], []
            for n in range(lo, min(lo + batch, teachers)):
                idn = id_number(n)
                school = n % schools
                stage, subject, tag = STAGES[n % len(STAGES)]
                tr.append((PROGRAMME, idn, f"教师{n}", f"S{school:06d}", "学校", "历下区", "济南市", stage, subject,
                           False, "active", now_s))
                cases = [f"SD22-L-{tag}-{c:03d}" for c in rnd.sample(range(1, 13), 3)]
                for c in cases:
                    ar.append((PROGRAMME, idn, c, now_s, True))
                extra = per_teacher - 5
                n_subject = 1 if rnd.random() < 0.5 else 0
                courses = [*cases, "SD22-ETH-01", "SD22-ETH-02", *rnd.choices(subject_courses[tag], k=n_subject),
                           *rnd.choices(picks[school], k=max(0, extra - n_subject))]
                for c in courses[:per_teacher]:
                    src += 1
                    rr.append((PROGRAMME, idn, c, None, "course", None, None, None, rnd.random() > 0.05,
                               stamps[src & 4095], f"bench:{src}", "import", now_s))
            put("teacher", ("programme", "id_number", "name", "school_code", "school_name", "county", "city", "stage",
                            "subject", "rural", "status", "updated_at"), tr)
            put("lesson_case_assignment", ("programme", "teacher", "course", "assigned_at", "enrolled"), ar)
            put("learning_record", ("programme", "teacher", "course", "activity", "kind", "hours", "minutes", "score",
                                    "passed", "occurred_at", "source", "origin", "created_at"), rr)
            raw.commit()
            counts["teachers"] += len(tr)
            counts["records"] += len(rr)
            counts["assignments"] += len(ar)
            print(f"  loaded {counts['teachers']:,} teachers, {counts['records']:,} records", file=sys.stderr,
                  end="\r")
        print(file=sys.stderr)
        if pg:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
        store.dispose()
    return counts


def marks(url: str) -> int:
    """How many mark rows the store holds (credit_mark)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(text("SELECT count(*) FROM credit_mark")).scalar_one()
    finally:
        engine.dispose()


def drop_triggers(url: str) -> None:
    """Disable the credit_mark triggers of a fresh store: the load without them, for the triggers' cost."""
    from creditbridge.store import open_store

    store = open_store(url)
    try:
        with store.engine.begin() as c:
            names = ([r[0] for r in c.execute(text("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'credit_mark_%'"))]
                     if store.is_postgres else
                     [r[0] for r in c.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                                   "AND name LIKE 'credit_mark_%'"))])
            for name in names:
                if store.is_postgres:
                    table = c.execute(text("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = :n"),
                                      {"n": name}).scalar_one()
                    c.execute(text(f"DROP TRIGGER {name} ON {table}"))
                else:
                    c.execute(text(f"DROP TRIGGER {name}"))
    finally:
        store.dispose()


def touch(url: str, teachers: int, every: int = 100, tag: str = "bench-touch", offset: int = 0) -> int:
    """Give every `every`-th teacher (from `offset`) one more passed ethics elective (4 hours; not timed): the
    input of the "1 % changed" re-evaluation. Returns the number of records added."""
    from creditbridge.store import open_store

    store = open_store(url, migrate=False)
    pg = store.is_postgres
    at = datetime(2022, 9, 1, 2, 0, tzinfo=UTC)
    when = at if pg else at.strftime("%Y-%m-%d %H:%M:%S.%f")
    now = datetime.now(UTC)
    now_v = now if pg else now.strftime("%Y-%m-%d %H:%M:%S.%f")
    mark = "%s" if pg else "?"
    rows = [(PROGRAMME, id_number(n), "SD22-E-ETHICS-03", "course", True, when, f"{tag}:{n}", "import", now_v)
            for n in range(offset, teachers, every)]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.executemany("INSERT INTO learning_record (programme, teacher, course, kind, passed, occurred_at, source, "
                        f"origin, created_at) VALUES ({', '.join([mark] * 9)})", rows)
        raw.commit()
    finally:
        raw.close()
        store.dispose()
    return len(rows)


def child(step: str, url: str, chunk: int, workers: int) -> None:
    """Run one timed step in this (fresh) process and print its figures as JSON."""
    import resource

    from sqlalchemy import select

    from creditbridge.store import open_store
    from creditbridge.store.models.core import LearningRecordRow

    store = open_store(url)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"step": step}
    if step == "baseline":
        lr = LearningRecordRow.__table__
        n = 0
        with store.engine.connect() as conn:
            res = conn.execution_options(yield_per=chunk * 12).execute(
                select(lr.c.teacher, lr.c.course, lr.c.kind, lr.c.passed, lr.c.hours)
                .where(lr.c.programme == PROGRAMME))
            for _ in res:
                n += 1
        out["rows"] = n
    else:
        from creditbridge.mappings.service import evaluate_store

        counts = evaluate_store(None, store, programme=PROGRAMME, chunk_size=chunk, workers=workers,
                                incremental=step == "incremental")
        out["counts"] = {k: v for k, v in counts.as_json().items() if k != "programmes"}
        out["mode"] = counts.programmes[PROGRAMME].mode
    out["seconds"] = time.perf_counter() - t0
    # CPU time of this process and its workers: on a shared machine, the figure load does not inflate
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out["cpu_seconds"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    # ru_maxrss is in KiB on Linux. With worker processes, the largest worker's peak times the number of
    # workers is added: an upper bound of the run's total resident memory.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    largest_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["peak_rss_mb"] = own + (largest_child * workers if step == "evaluate" and workers > 1 else 0)
    store.dispose()
    print(json.dumps(out))


def run_step(step: str, url: str, chunk: int, workers: int = 1) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", step, "--url", url, "--chunk", str(chunk),
                           "--workers", str(workers)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reset(url: str) -> dict[str, int]:
    """A store loaded before (--store-url), made ready for a first full evaluation again (not timed): results,
    change log, runs and marks deleted; the inputs stay. Returns what it holds."""
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            for table in ("credit_result_change", "credit_result", "credit_evaluation_run", "credit_mark"):
                c.execute(text(f"DELETE FROM {table}"))  # table names: this module's constants
            if engine.dialect.name == "postgresql":
                c.execute(text("ANALYZE"))
            return {"teachers": c.execute(text("SELECT count(*) FROM teacher")).scalar_one(),
                    "records": c.execute(text("SELECT count(*) FROM learning_record")).scalar_one(),
                    "assignments": c.execute(text("SELECT count(*) FROM lesson_case_assignment")).scalar_one()}
    finally:
        engine.dispose()


def bench(name: str, url: str, teachers: int, per_teacher: int, chunk: int, seed: int,
          workers: int, rerun: bool = True, no_trigger_url: str | None = None, reuse: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    if reuse:
        print(f"[{name}] reusing a loaded store: results, runs and marks cleared ...", file=sys.stderr)
        loaded = reset(url)
        if loaded["teachers"] != teachers:
            raise SystemExit(f"--store-url holds {loaded['teachers']:,} teachers, not --teachers {teachers:,}")
    else:
        print(f"[{name}] loading {teachers:,} teachers × {per_teacher} records (through the mark triggers) ...",
              file=sys.stderr)
        loaded = generate(url, teachers, per_teacher, seed)
    load_s = time.perf_counter() - t0
    load_marks = marks(url)
    load_plain_s = None
    if no_trigger_url is not None:
        drop_triggers(no_trigger_url)
        print(f"[{name}] the same load without the triggers ...", file=sys.stderr)
        t0 = time.perf_counter()
        generate(no_trigger_url, teachers, per_teacher, seed)
        load_plain_s = time.perf_counter() - t0
    base = run_step("baseline", url, chunk)
    # the first full evaluation: every result new, and the bulk load's marks cleared
    ev = run_step("evaluate", url, chunk, workers)
    # a re-run with nothing changed: compares, writes nothing
    again = run_step("evaluate", url, chunk, workers) if rerun else None
    # incremental with nothing marked, then after 1 % of the teachers got a new record
    idle = run_step("incremental", url, chunk) if rerun else None
    run_tag = uuid.uuid4().hex[:8]  # record sources stay unique when a kept store is measured again
    touched = touch(url, teachers, tag=f"bench-touch-{run_tag}") if rerun else 0
    one_pct = run_step("incremental", url, chunk) if rerun else None
    # the same 1 % change evaluated by a full run, for comparison (issue 16: "today about 100 %")
    touch(url, teachers, tag=f"bench-touch-2-{run_tag}") if rerun else 0
    one_pct_full = run_step("evaluate", url, chunk, workers) if rerun else None
    full = ev["seconds"]

    def ratio(x: dict[str, Any] | None, of: float | None) -> float | None:
        return round(x["seconds"] / of, 4) if x and of else None

    row = {"backend": name, "workers": workers, **loaded, "load_seconds": round(load_s, 1),
           "load_marks": load_marks,
           "load_without_triggers_seconds": round(load_plain_s, 1) if load_plain_s is not None else None,
           "baseline_seconds": round(base["seconds"], 2), "baseline_peak_rss_mb": round(base["peak_rss_mb"]),
           "evaluate_seconds": round(ev["seconds"], 2), "evaluate_peak_rss_mb": round(ev["peak_rss_mb"]),
           "evaluate_cpu_seconds": round(ev["cpu_seconds"], 1),
           "rerun_cpu_seconds": round(again["cpu_seconds"], 1) if again else None,
           "rerun_seconds": round(again["seconds"], 2) if again else None,
           "ratio_to_baseline": round(ev["seconds"] / base["seconds"], 2) if base["seconds"] else None,
           "teachers_per_second": round(teachers / ev["seconds"]) if ev["seconds"] else None,
           "counts": ev["counts"], "rerun_changed": again["counts"]["changed"] if again else None,
           "incremental_idle_seconds": round(idle["seconds"], 2) if idle else None,
           "incremental_idle_mode": idle["mode"] if idle else None,
           "one_percent_records_added": touched,
           "incremental_one_percent_seconds": round(one_pct["seconds"], 2) if one_pct else None,
           "incremental_one_percent_mode": one_pct["mode"] if one_pct else None,
           "incremental_one_percent_evaluated": one_pct["counts"]["evaluated"] if one_pct else None,
           "incremental_one_percent_changed": one_pct["counts"]["changed"] if one_pct else None,
           "incremental_one_percent_ratio_to_full": ratio(one_pct, full),
           "incremental_one_percent_ratio_to_full_rerun": ratio(one_pct, again["seconds"] if again else None),
           "full_one_percent_seconds": round(one_pct_full["seconds"], 2) if one_pct_full else None,
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    ok = ev["seconds"] <= 60 and ev["peak_rss_mb"] <= 4096
    inc_ok = bool(one_pct and idle and one_pct["seconds"] <= 0.05 * full and idle["seconds"] <= 2)
    trig = ("store reused (loaded before), " if reuse else "") + (
            f"load {load_s:.1f} s with the mark triggers ({load_marks:,} marks)"
            + (f", {load_plain_s:.1f} s without" if load_plain_s is not None else "") + "; ")
    print(f"[{name}, {workers} worker(s)] {trig}baseline scan {base['seconds']:.1f} s ({base['rows']:,} rows, "
          f"peak {base['peak_rss_mb']:.0f} MB); "
          f"evaluate (all) {ev['seconds']:.1f} s ({ev['cpu_seconds']:.1f} s CPU), peak {ev['peak_rss_mb']:.0f} MB, "
          f"{row['ratio_to_baseline']}× baseline; "
          + (f"re-run (all) {again['seconds']:.1f} s ({again['cpu_seconds']:.1f} s CPU), "
             f"changed {again['counts']['changed']}; " if again else "")
          + (f"incremental, nothing marked {idle['seconds']:.2f} s ({idle['mode']}); " if idle else "")
          + (f"incremental after {touched:,} new records (1 %) {one_pct['seconds']:.2f} s ({one_pct['mode']}, "
             f"evaluated {one_pct['counts']['evaluated']}, changed {one_pct['counts']['changed']}) = "
             f"{100 * one_pct['seconds'] / full:.1f} % of the full evaluation, "
             f"{100 * one_pct['seconds'] / again['seconds']:.1f} % of the full re-run; "
             f"full run after another 1 % {one_pct_full['seconds']:.1f} s; " if one_pct and again and one_pct_full
             else "")
          + f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          + f"target ≤60 s / ≤4096 MB: {'met' if ok else 'NOT met'}; "
          + f"incremental targets (≤5 %, ≤2 s): {'met' if inc_ok else 'NOT met'}", flush=True)
    return row


def last_full_seconds(url: str) -> float:
    """Duration of the store's last complete full evaluation (its run row)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            row = c.execute(text("SELECT started_at, finished_at FROM credit_evaluation_run WHERE mode = 'all' "
                                 "AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")).first()
    finally:
        engine.dispose()
    if row is None:
        raise SystemExit("--incremental-only needs a store with a complete full evaluation")
    start, end = (datetime.fromisoformat(v) if isinstance(v, str) else v for v in row)
    return (end - start).total_seconds()


def incremental_only(url: str, teachers: int, chunk: int, offset: int) -> dict[str, Any]:
    """On an evaluated store: an incremental run with nothing marked, then one after 1 % of the teachers (every
    100th from `offset`, so a second measurement touches other teachers) got a new record; both against the
    store's last full evaluation."""
    full = last_full_seconds(url)
    idle = run_step("incremental", url, chunk)
    touched = touch(url, teachers, tag=f"bench-touch-{uuid.uuid4().hex[:8]}", offset=offset)
    one = run_step("incremental", url, chunk)
    row = {"full_seconds": round(full, 2), "idle_seconds": round(idle["seconds"], 2), "idle_mode": idle["mode"],
           "one_percent_records": touched, "one_percent_seconds": round(one["seconds"], 2),
           "one_percent_cpu_seconds": round(one["cpu_seconds"], 2), "one_percent_mode": one["mode"],
           "evaluated": one["counts"]["evaluated"], "changed": one["counts"]["changed"],
           "ratio": round(one["seconds"] / full, 4), "load_average": [round(x, 2) for x in os.getloadavg()]}
    met = one["seconds"] <= 0.05 * full and idle["seconds"] <= 2
    print(f"incremental only: last full evaluation {full:.1f} s; nothing marked {idle['seconds']:.2f} s "
          f"({idle['mode']}); after {touched:,} new records {one['seconds']:.2f} s ({one['cpu_seconds']:.2f} s CPU, "
          f"{one['mode']}, evaluated {one['counts']['evaluated']}, changed {one['counts']['changed']}) = "
          f"{100 * row['ratio']:.2f} % of the full evaluation; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; targets (≤5 %, ≤2 s): {'met' if met else 'NOT met'}",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=12, help="learning records per teacher (≥ 5)")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL server (a scratch database is created)")
    ap.add_argument("--chunk", type=int, default=5000, help="teachers per chunk")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="evaluation processes (the machine has 2 cores)")
    ap.add_argument("--no-rerun", action="store_true", help="skip the second, nothing-changed evaluation")
    ap.add_argument("--trigger-cost", action="store_true",
                    help="load again into a scratch store without the mark triggers and print both load times")
    ap.add_argument("--keep", action="store_true",
                    help="PostgreSQL: keep the scratch database (its URL is printed) for --store-url")
    ap.add_argument("--store-url", help="measure a store loaded before by this script with the same --teachers "
                    "(kept with --keep; SQLite: a file): its results, runs and marks are cleared, the inputs reused")
    ap.add_argument("--incremental-only", action="store_true",
                    help="with --store-url of an evaluated store: only the incremental steps, against its last full "
                         "evaluation's time (nothing cleared)")
    ap.add_argument("--touch-offset", type=int, default=0, help="first teacher of the 1 %% touched (every 100th)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.url, a.chunk, a.workers)
        return
    results = []
    if a.store_url and a.incremental_only:
        results.append(incremental_only(a.store_url, a.teachers, a.chunk, a.touch_offset))
        if a.json:
            print(json.dumps(results, indent=2))
        return
    if a.store_url:
        name = "postgres" if a.store_url.startswith("postgresql") else "sqlite"
        results.append(bench(name, a.store_url, a.teachers, a.records, a.chunk, a.seed, a.workers, not a.no_rerun,
                             reuse=True))
        if a.json:
            print(json.dumps(results, indent=2))
        return
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="cb-bench-") as d:
            plain = f"sqlite:///{Path(d) / 'plain.db'}" if a.trigger_cost else None
            results.append(bench("sqlite", f"sqlite:///{Path(d) / 'bench.db'}", a.teachers, a.records, a.chunk, a.seed,
                                 a.workers, not a.no_rerun, plain))
    if a.backend in ("postgres", "both"):
        names = [f"cb_bench_{uuid.uuid4().hex[:8]}" for _ in range(2 if a.trigger_cost else 1)]
        admin = create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for name in names:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url, *plain = [make_url(a.pg_url).set(database=n).render_as_string(hide_password=False) for n in names]
            results.append(bench("postgres", url, a.teachers, a.records, a.chunk, a.seed,
                                 a.workers, not a.no_rerun, plain[0] if plain else None))
        finally:
            with admin.connect() as c:
                for name in names:
                    if a.keep and name == names[0]:
                        print(f"kept: --store-url {make_url(a.pg_url).set(database=name).render_as_string(False)}",
                              file=sys.stderr)
                        continue
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if a.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
