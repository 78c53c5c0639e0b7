"""Continuous mode end to end (issue 16): signed deliveries at a fixed rate through a real `creditbridge serve`
-> `creditbridge worker` -> `creditbridge registry-sim`, on PostgreSQL with N teachers stored; per delivery the
time from its 2xx to the registry simulator recording that teacher's changed result (its `received_at`).

Baseline, same run: the same number of deliveries (to other teachers) with no worker, then what scheduled mode
does at its next trigger, `credits evaluate` + `push`, run once right after them (the best case of scheduled
mode, whose triggers are hours apart); per delivery the time from its 2xx to its record at the registry.

Setup (not timed): the province is bulk-loaded with bench/evaluate_million.py's generator (6 records per teacher
by default, so that one more elective always changes the result), Moodle ids given to teachers and courses, a
full `credits evaluate --all`, and every result registered once (version 1), so every delivery leads to a correction
(version 2), as during the deadline rush. Version 1 is written into the outbox as acknowledged by SQL in the
setup, not sent (the simulator takes a correction whose earlier key it does not hold).

    python bench/continuous_latency.py --teachers 100000 --rate 500 --seconds 60
    python bench/continuous_latency.py --teachers 20000 --rate 50 --seconds 10      # a quick run
    python bench/continuous_latency.py --teachers 1000000 --setup-only   # set up once, keep it: prints its URL
    python bench/continuous_latency.py --teachers 1000000 --rate 500 --seconds 60 --workers 2 --store-url URL

A kept store (`--setup-only`, or `--keep` after a run) is measured again with `--store-url`: its teachers who have
not taken the course yet get the deliveries, the setup's version 1 rows stay; churned tables are vacuumed first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from standardwebhooks.webhooks import Webhook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from evaluate_million import generate  # noqa: E402

from creditbridge.webhooks.payload import webhook_id  # noqa: E402

PG_ADMIN = os.environ.get("CREDITBRIDGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REGISTRY_SECRET = "bench-registry-secret"
SITE = "http://127.0.0.1:8765"
# An elective every generated teacher can take (ethics is every school's topic) and that adds hours.
EXTRA_COURSE = "SD22-E-ETHICS-08"
TIMECREATED = int(datetime(2022, 10, 1, tzinfo=UTC).timestamp())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), *args],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run_cli(config: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), *args, "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def wait_http(port: int, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}{path}")


def delivery(userid: int, courseid: int, objectid: int) -> tuple[bytes, dict[str, str]]:
    p = {"event": "course_completed", "eventname": "\\core\\event\\course_completed", "objectid": objectid,
         "site": SITE, "user": {"id": userid, "username": f"u{userid}", "idnumber": ""},
         "course": {"id": courseid, "idnumber": ""}, "activity": None, "completionstate": None, "grade": None,
         "grademax": None, "timespent": None, "timecreated": TIMECREATED + objectid}
    body = json.dumps(p, separators=(",", ":"))
    wid = webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], userid)
    when = datetime.now(UTC)
    return body.encode(), {"webhook-id": wid, "webhook-timestamp": str(int(when.timestamp())),
                           "webhook-signature": Webhook(SECRET).sign(wid, when, body),
                           "content-type": "application/json"}


# One pre-signed delivery: (teacher, body, headers). Signed before the timed window, as a busy Moodle's many
# PHP processes would have done each on its own: the benchmark's one client machine should not be what limits
# the rate. The signature's timestamp is then up to `--seconds` old on arrival, well inside the receiver's
# 5-minute tolerance (standardwebhooks); the latency measured starts at each delivery's 2xx, so it is unchanged.
Signed = tuple[str, bytes, dict[str, str]]


def presign(targets: list[tuple[str, int]], courseid: int, first_objectid: int = 1) -> list[Signed]:
    return [(teacher, *delivery(userid, courseid, objectid=first_objectid + i))
            for i, (teacher, userid) in enumerate(targets)]


def _send_share(port: int, share: list[tuple[int, Signed]], t0: float, rate: float,
                 connections: int) -> tuple[dict[str, float], int, list[float], float]:
    """One client process: its share of the deliveries, each at its slot t0 + i / rate (CLOCK_MONOTONIC is one
    clock for every process of the machine), over `connections` keep-alive connections. Returns the epoch time
    of each 2xx by teacher, the count of failures, each delivery's lag behind its slot when it went out, and the
    monotonic time of the last answer."""
    done: dict[str, float] = {}
    failed = [0]
    lags: list[float] = []
    last = [t0]
    lock = threading.Lock()

    def sender(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i, (teacher, body, headers) in share[k::connections]:
            due = t0 + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            lag = time.monotonic() - due
            for _attempt in range(3):
                try:
                    conn.request("POST", "/webhooks/moodle", body=body, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    break
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            else:
                with lock:
                    failed[0] += 1
                continue
            at, mono = time.time(), time.monotonic()
            with lock:
                lags.append(lag)
                last[0] = max(last[0], mono)
                if r.status // 100 == 2:
                    done[teacher] = at
                else:
                    failed[0] += 1
        conn.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, failed[0], lags, last[0]


def send_at_rate(port: int, signed: list[Signed], rate: float, processes: int = 2,
                 connections: int = 64) -> tuple[dict[str, float], int, dict[str, float]]:
    """Send the pre-signed deliveries at `rate` per second from `processes` client processes (one Python
    process's GIL tops out below the target on this machine) over `connections` keep-alive connections in all.
    Open loop, like a Moodle site's many PHP processes: enough connections that the receiver's answer time
    (a group commit) does not pace the sender. Returns the wall time (epoch seconds) of each 2xx by teacher,
    the count of non-2xx answers, and the schedule: the rate achieved (deliveries / first slot to last answer)
    and the lag of the sends behind their slots (p50, p99, max)."""
    t0 = time.monotonic() + 1.0  # every process started before the first slot
    per = max(1, connections // processes)
    indexed = list(enumerate(signed))
    shares = [indexed[k::processes] for k in range(processes)]
    done: dict[str, float] = {}
    failed, lags, last = 0, [], t0
    # fork: the children inherit the imported modules instead of importing the script again
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        for d, f, lg, la in pool.map(_send_share, [port] * processes, shares, [t0] * processes,
                                     [rate] * processes, [per] * processes):
            done.update(d)
            failed += f
            lags.extend(lg)
            last = max(last, la)
    lags.sort()
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
    schedule = {"achieved_rate": round(len(signed) / max(last - t0, 1e-9), 1),
                "send_lag_p50": round(q[49], 3), "send_lag_p99": round(q[98], 3),
                "send_lag_max": round(lags[-1] if lags else 0.0, 3)}
    return done, failed, schedule


def registered(sim_db: Path, version: int) -> dict[str, float]:
    """teacher -> epoch time the simulator recorded that teacher's record of this version."""
    conn = sqlite3.connect(sim_db, timeout=30)
    try:
        rows = conn.execute("SELECT teacher, received_at FROM credit_record WHERE version = ?", (version,)).fetchall()
    finally:
        conn.close()
    return {t: datetime.fromisoformat(at).timestamp() for t, at in rows}


def _drained(engine: Any) -> bool:
    """Nothing left anywhere: inbox processed, no mark, no open submission (what did not arrive never will)."""
    with engine.connect() as c:
        return not c.execute(text(
            "SELECT 1 FROM webhook_delivery WHERE state = 'pending' UNION ALL SELECT 1 FROM credit_mark"
            " UNION ALL SELECT 1 FROM registry_submission WHERE state IN ('pending', 'sent') LIMIT 1")).first()


class QueueSampler(threading.Thread):
    """Every `every` seconds, how much waits at each stage: deliveries stored but not yet turned into records
    (the receivers' background processing), marked teachers (the worker's evaluation), open submissions (the
    worker's push). Where a queue grows is where the pipeline falls behind the arrival rate."""

    def __init__(self, engine: Any, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.engine, self.every = engine, every
        self.samples: list[tuple[float, int, int, int]] = []
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        with self.engine.connect() as c:
            while not self.halt.wait(self.every):
                row = c.execute(text(
                    "SELECT (SELECT count(*) FROM webhook_delivery WHERE state = 'pending'),"
                    " (SELECT count(*) FROM credit_mark),"
                    " (SELECT count(*) FROM registry_submission WHERE state IN ('pending', 'sent'))")).one()
                c.commit()
                self.samples.append((round(time.monotonic() - self.t0, 1), *row))

    def summary(self) -> dict[str, Any]:
        self.halt.set()
        self.join(10)
        s = self.samples
        return {"max_pending_deliveries": max((x[1] for x in s), default=0),
                "max_marked_teachers": max((x[2] for x in s), default=0),
                "max_open_submissions": max((x[3] for x in s), default=0),
                "timeline_s_deliveries_marks_submissions": s[:: max(1, len(s) // 20)]}


def figures(sent: dict[str, float], acked: dict[str, float]) -> dict[str, Any]:
    lat = sorted(acked[t] - sent[t] for t in sent if t in acked)
    if not lat:
        return {"count": 0, "missing": len(sent)}
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {"count": len(lat), "missing": len(sent) - len(lat), "p50": round(q[49], 3), "p99": round(q[98], 3),
            "max": round(lat[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teachers", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=6, help="learning records per teacher")
    ap.add_argument("--rate", type=float, default=500.0, help="deliveries per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long deliveries are sent (each phase)")
    ap.add_argument("--receiver-workers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="continuous workers (creditbridge worker processes)")
    ap.add_argument("--client-processes", type=int, default=2, help="processes sending the deliveries")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections, all processes together")
    ap.add_argument("--settle", type=float, default=120.0, help="max seconds to wait for the last registration")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed) for "
                    "--store-url, and the processes' logs")
    ap.add_argument("--setup-only", action="store_true", help="load and set up the store, then stop (with --keep)")
    ap.add_argument("--store-url", help="run against a store set up before by this script with the same --teachers "
                    "(kept with --keep): its teachers who have not taken the course yet get the deliveries")
    args = ap.parse_args()
    n_deliveries = int(args.rate * args.seconds)
    if 2 * n_deliveries > args.teachers:
        raise SystemExit("--teachers must be at least twice rate x seconds (each delivery goes to another teacher)")

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = None
    if args.store_url:
        url = args.store_url
    else:
        name = f"cb_bench_cont_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="cb-continuous-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        started = time.perf_counter()
        engine = create_engine(url)
        if name is not None:
            print(f"loading {args.teachers:,} teachers x {args.records} records into {name} ...", file=sys.stderr)
            generate(url, args.teachers, args.records, seed=7)
            with engine.begin() as c:
                c.execute(text("UPDATE catalog_course SET moodle_course_id = id"))
                c.execute(text("UPDATE teacher SET moodle_user_id = id, username = 'u' || id"))
                c.execute(text("DELETE FROM credit_mark"))
        with engine.connect() as c:
            courseid = c.execute(text("SELECT moodle_course_id FROM catalog_course WHERE code = :c"),
                                 {"c": EXTRA_COURSE}).scalar_one()
            stored = c.execute(text("SELECT count(*) FROM teacher")).scalar_one()
        if stored != args.teachers:
            raise SystemExit(f"the store holds {stored:,} teachers, not --teachers {args.teachers:,}")
        sim_port, port = free_port(), free_port()
        sim_db = work / "registry-sim.db"
        config = work / "creditbridge.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[sync]\nprogramme = "sd-2022"\n'
            f'[webhooks]\nsecrets = ["{SECRET}"]\nhost = "127.0.0.1"\nport = {port}\n'
            f'workers = {args.receiver_workers}\naccess_log = false\n'
            f'[registry]\ntarget = "rest"\nurl = "http://127.0.0.1:{sim_port}"\nkey_id = "creditbridge"\n'
            f'secret = "{REGISTRY_SECRET}"\nbackoff_seconds = 0.05\n'
            f'[pipeline]\nmode = "continuous"\npoll_seconds = 0.5\ncheck_seconds = 600\n', encoding="utf-8")
        full_seconds = None
        if name is not None:
            t = time.perf_counter()
            full = run_cli(config, "credits", "evaluate", "--all", "--summary")
            full_seconds = round(time.perf_counter() - t, 1)
            print(f"full evaluation: {full_seconds:.1f} s ({full.get('evaluated')} results)", file=sys.stderr)
        with engine.connect() as c:
            # teachers who have not taken the course yet: its completion changes their result
            rows = c.execute(text(
                "SELECT id_number, moodle_user_id FROM teacher t WHERE NOT EXISTS (SELECT 1 FROM learning_record r"
                " WHERE r.programme = t.programme AND r.teacher = t.id_number AND r.course = :c)"
                " ORDER BY random() LIMIT :n"), {"c": EXTRA_COURSE, "n": 2 * n_deliveries}).all()
        cont_targets = [(r[0], int(r[1])) for r in rows[:n_deliveries]]
        base_targets = [(r[0], int(r[1])) for r in rows[n_deliveries:]]
        procs.append(cli(config, "registry-sim", "--port", str(sim_port), "--db", str(sim_db), "--secret",
                         REGISTRY_SECRET, log=work / "sim.log"))
        wait_http(sim_port, "/api/v1/health")
        # Version 1 of every teacher, as if registered before the rush (setup): written as acknowledged outbox
        # rows by SQL, not sent (pushing a million records first would take longer than the run). The simulator
        # takes a correction whose earlier key it does not hold, so each delivery's version 2 is recorded.
        if name is not None:
            with engine.begin() as c:
                c.execute(text(
                    "INSERT INTO registry_submission (programme, teacher, role, year, version, action,"
                    " idempotency_key, result_hash, payload, state, attempts, created_at, updated_at, sent_at,"
                    " decided_at) SELECT programme, teacher, role, year, 1, 'submit', 'setup-' || id, result_hash,"
                    " '{}'::json, 'acknowledged', 1, now(), now(), now(), now() FROM credit_result"
                    " WHERE role = 'teacher'"))
        # What autovacuum does on a normal server (this benchmark's server runs without it): the load and the full
        # evaluation leave millions of dead credit_mark rows, and every worker's claim of marks then reads them
        # all (349 ms per claim at 1,000,000 teachers, measured), which starves the receivers of the 2 cores.
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text("VACUUM (ANALYZE)" if name is not None else
                           "VACUUM (ANALYZE) credit_mark, webhook_delivery, learning_record, registry_submission,"
                           " credit_result, credit_result_change"))
        setup_seconds = time.perf_counter() - started
        if args.setup_only:
            print(f"set up in {setup_seconds:.0f} s: --store-url {url}", file=sys.stderr)
            return

        procs.append(cli(config, "serve", log=work / "serve.log"))
        wait_http(port, "/healthz")
        workers = [cli(config, "worker", log=work / f"worker{k}.log") for k in range(args.workers)]
        procs.extend(workers)
        time.sleep(2)  # workers connected and listening

        cont_signed = presign(cont_targets, courseid)
        load0 = open("/proc/loadavg").read().split()[:3]
        print(f"continuous: {n_deliveries} deliveries at {args.rate:g}/s ...", file=sys.stderr)
        sampler = QueueSampler(engine)
        sampler.start()
        t = time.perf_counter()
        sent, failed, schedule = send_at_rate(port, cont_signed, args.rate, args.client_processes,
                                              args.connections)
        send_seconds = time.perf_counter() - t
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            acked = registered(sim_db, 2)
            if all(tt in acked for tt in sent) or _drained(engine):
                break
            time.sleep(0.5)
        cont = figures(sent, registered(sim_db, 2))
        with engine.connect() as c:  # never processed within --settle: left for `intake replay` / the scheduler
            left = c.execute(text("SELECT count(*) FROM webhook_delivery WHERE state = 'pending'")).scalar_one()
        cont.update({"failed": failed, **schedule, "send_seconds": round(send_seconds, 1),
                     "left_pending": left, "queues": sampler.summary()})
        for w in workers:
            w.send_signal(signal.SIGTERM)
            w.wait(60)

        print("baseline (scheduled: evaluate + push once after the deliveries) ...", file=sys.stderr)
        base_signed = presign(base_targets, courseid, first_objectid=n_deliveries + 1)
        t = time.perf_counter()
        bsent, bfailed, bschedule = send_at_rate(port, base_signed, args.rate, args.client_processes,
                                                 args.connections)
        bsend_seconds = time.perf_counter() - t
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:  # the receivers' background processing: every delivery a record
            with engine.connect() as c:
                if not c.execute(text("SELECT 1 FROM webhook_delivery WHERE state = 'pending' LIMIT 1")).first():
                    break
            time.sleep(0.2)
        t = time.perf_counter()
        ev = run_cli(config, "credits", "evaluate", "--summary")
        pu = run_cli(config, "push")
        job_seconds = time.perf_counter() - t
        base = figures(bsent, registered(sim_db, 2))
        base.update({"failed": bfailed, **bschedule, "send_seconds": round(bsend_seconds, 1),
                     "evaluate_push_seconds": round(job_seconds, 2), "evaluated": ev.get("evaluated"),
                     "pushed": pu.get("acknowledged")})
        load1 = open("/proc/loadavg").read().split()[:3]
        doc = {"teachers": args.teachers, "records_per_teacher": args.records, "rate": args.rate,
               "seconds": args.seconds, "workers": args.workers, "receiver_workers": args.receiver_workers,
               "full_evaluation_seconds": full_seconds, "setup_seconds": round(setup_seconds, 1),
               "continuous": cont, "baseline_scheduled": base,
               "p99_ratio_to_baseline": (round(cont["p99"] / base["p99"], 3)
                                         if cont.get("p99") and base.get("p99") else None),
               "loadavg_before": load0, "loadavg_after": load1}
        print(json.dumps(doc, indent=2))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
        if name is not None and (args.keep or args.setup_only):
            print(f"kept: --store-url {url}", file=sys.stderr)
        elif name is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if args.keep:
            print(f"kept the processes' logs: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
