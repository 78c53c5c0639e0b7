"""Prometheus metrics as an operator's monitoring scrapes them: a real `creditbridge serve` (gunicorn, 2 workers)
with GET /metrics on metrics.port, and a real `creditbridge scheduler` with it on metrics.scheduler_port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cli_process import run_cli
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from webhook_helpers import free_port, payload, signed, signed_bytes, start_receiver

from creditbridge.metrics import DIR_PREFIX, build_registry, count_delivery
from creditbridge.records.id_number import find_id_numbers
from creditbridge.store import Store, open_store

ROOT = Path(__file__).resolve().parents[2]
DELIVERIES = 24
DUPLICATES = 6
# Refusals sent, by the reason the receiver gives them.
REFUSALS = {"bad_signature": 5, "bad_json": 4, "method_not_allowed": 3, "missing_headers": 2}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a /metrics answer (parsed by prometheus-client's own parser)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def scrape(url: str) -> str:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text


def intake_status(config: Path) -> dict:
    ran = run_cli(config, "intake", "status", "--json")
    assert ran.code == 0, ran.stderr
    return json.loads(ran.stdout)


def _send_load(url: str) -> None:
    """Deliveries (each also retried once by some senders: duplicates) and junk, from 6 threads at once."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def deliver(n: int) -> None:
        body, headers = signed(payload(objectid=1000 + n, userid=100 + n))
        assert session().post(url, data=body, headers=headers, timeout=30).status_code == 202
        if n < DUPLICATES:
            assert session().post(url, data=body, headers=headers, timeout=30).status_code == 200

    def junk(reason: str) -> None:
        body, headers = signed(payload(objectid=5))
        if reason == "bad_signature":
            r = session().post(url, data=body, headers={**headers, "webhook-signature": "v1,AAAA"}, timeout=30)
        elif reason == "bad_json":
            r = session().post(url, data=b"{", headers=signed_bytes(b"{", "msg_junk"), timeout=30)
        elif reason == "method_not_allowed":
            r = session().get(url, timeout=30)
        else:
            r = session().post(url, data=body, timeout=30)
        assert r.status_code >= 400

    with ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(deliver, n) for n in range(DELIVERIES)]
        jobs += [pool.submit(junk, reason) for reason, n in REFUSALS.items() for _ in range(n)]
        for job in jobs:
            job.result()


def test_metrics_during_a_load_test_match_intake_status(db_url: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    # Deliveries stay pending (no processing): the inbox figures are then exactly what was sent.
    receiver = start_receiver(tmp_path, db_url, "process_inline = false\ncounter_flush_seconds = 0.2\n"
                              f"[metrics]\nport = {metrics_port}\ncache_seconds = 0\n", workers=2)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        scrapes: list[tuple[float, str]] = []
        stop = threading.Event()

        def keep_scraping() -> None:  # a Prometheus scraping while the deliveries arrive
            while not stop.is_set():
                scrapes.append((time.monotonic(), scrape(metrics_url)))

        scraper = threading.Thread(target=keep_scraping)
        scraper.start()
        try:
            _send_load(receiver.url + "/webhooks/moodle")
            load_done = time.monotonic()
        finally:
            stop.set()
            scraper.join(30)
        assert scrapes and scrapes[0][0] < load_done  # answered while the load was on

        # `intake status` sees refusals after each worker's next counter flush (0.2 s here).
        deadline = time.monotonic() + 20
        status = intake_status(receiver.config)
        while status["rejected"] < sum(REFUSALS.values()) and time.monotonic() < deadline:
            time.sleep(0.3)
            status = intake_status(receiver.config)
        found = samples(scrape(metrics_url))

        total = "creditbridge_webhook_deliveries_total"
        assert value(found, total, outcome="accepted", reason="accepted") == DELIVERIES == status["received"]
        assert value(found, total, outcome="duplicate", reason="duplicate") == DUPLICATES == status["duplicates"]
        refused = {dict(labels)["reason"]: v for (name, labels), v in found.items()
                   if name == total and dict(labels)["outcome"] == "refused"}
        assert refused == REFUSALS == status["rejected_by_reason"]
        # Counted by every worker: both workers' files are added up whichever worker answers the scrape.
        assert value(found, "creditbridge_inbox_deliveries", state="pending") == DELIVERIES == status["pending"]
        assert value(found, "creditbridge_inbox_deliveries", state="parked") == 0 == status["parked"]
        assert value(found, "creditbridge_inbox_oldest_pending_age_seconds") > 0
        assert value(found, "creditbridge_store_up") == 1
        assert value(found, "creditbridge_evaluation_backlog") == status["waiting_evaluation"]
        assert value(found, "creditbridge_push_backlog", stage="to_build") == 0
        # The counters only grow from scrape to scrape.
        accepted = [value(samples(t), total, outcome="accepted", reason="accepted") or 0 for _, t in scrapes]
        assert [*accepted, DELIVERIES] == sorted([*accepted, DELIVERIES])

        # Not on the webhook port (nor reachable through deploy/nginx, which proxies two exact paths only).
        assert requests.get(receiver.url + "/metrics", timeout=30).status_code == 404
    finally:
        receiver.stop()


def test_metrics_port_refuses_what_is_not_a_scrape(sqlite_url: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    receiver = start_receiver(tmp_path, sqlite_url, f"[metrics]\nport = {metrics_port}\n", workers=2)
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = requests.request(method, base + "/metrics", data=b"x" * 1000, timeout=30)
            assert r.status_code == 405 and r.headers["Allow"] == "GET"
        for path in ("/", "/metrics/", "/metricsx", "/webhooks/moodle", "/healthz", "/%2e%2e/metrics"):
            assert requests.get(base + path, timeout=30).status_code == 404, path
        # A signed delivery sent to the metrics port is not a delivery.
        body, headers = signed(payload())
        assert requests.post(base + "/webhooks/moodle", data=body, headers=headers, timeout=30).status_code == 404
        # Odd query strings: the library's `name[]` filter works, junk is ignored, a huge one is refused.
        only = requests.get(base + "/metrics?name[]=creditbridge_store_up", timeout=30)
        assert only.status_code == 200 and [f.name for f in text_string_to_metric_families(only.text)] == [
            "creditbridge_store_up"]
        assert requests.get(base + "/metrics?%ff%00=%ZZ&&=&name[]=", timeout=30).status_code == 200
        assert requests.get(base + "/metrics?" + "a" * 3000, timeout=30).status_code == 414
        assert requests.get(base + "/metrics?" + "a" * 100_000, timeout=30).status_code in (400, 414)
        # Still serving, and none of that became a label or a count.
        text = scrape(base + "/metrics")
        assert "creditbridge_webhook_deliveries_total" not in text
        assert requests.get(receiver.url + "/healthz", timeout=30).status_code == 200
    finally:
        receiver.stop()


def test_reasons_and_labels_stay_bounded_and_carry_no_id_number(sqlite_url: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    receiver = start_receiver(tmp_path, sqlite_url, f"[metrics]\nport = {metrics_port}\ncache_seconds = 0\n")
    try:
        url = receiver.url + "/webhooks/moodle"
        # An ID number in every place a sender controls: path, webhook-id, body, headers.
        id_number = "11010519491231002X"
        body = json.dumps({"user": {"idnumber": id_number}}).encode()
        requests.post(url, data=body, headers=signed_bytes(body, f"msg_{id_number}"), timeout=30)
        requests.post(url + "/" + id_number, data=body, timeout=30)
        requests.post(url, data=body, headers={**signed_bytes(body, id_number), "webhook-signature": id_number},
                      timeout=30)
        text = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert find_id_numbers(text) == []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                for label, v in s.labels.items():
                    assert re.fullmatch(r"[a-z][a-z0-9_]*", v), (s.name, label, v)
    finally:
        receiver.stop()


def test_metrics_port_equal_to_the_webhook_port_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[webhooks]\nport = 18080\n[metrics]\nport = 18080\n')
    ran = run_cli(cfg, "serve", "--print-command")
    assert ran.code == 2
    assert ran.stderr.startswith("error: metrics.port = 18080 is the webhook port")
    cfg.write_text('[metrics]\nport = 70000\n')
    ran = run_cli(cfg, "serve", "--print-command")
    assert ran.code == 2 and "metrics.port" in ran.stderr
    cfg.write_text('[webhooks]\nport = 18080\n[metrics]\nport = 18081\n')
    ran = run_cli(cfg, "serve", "--print-command")
    assert ran.code == 0 and "--bind 127.0.0.1:18080 --bind 127.0.0.1:18081" in ran.stdout


def test_nginx_config_does_not_expose_metrics() -> None:
    conf = (ROOT / "deploy" / "nginx" / "creditbridge.conf").read_text()
    # Only exact locations are proxied; everything else answers 404 (tests/webhooks/test_nginx_proxy.py runs it).
    assert re.findall(r"^\s*location\s+(.*?)\s*\{", conf, re.MULTILINE) == ["= /webhooks/moodle", "= /healthz", "/"]
    assert "/metrics" not in conf


def _scheduler_config(tmp_path: Path, db_url: str, port: int) -> Path:
    cfg = tmp_path / "scheduler.toml"
    # Triggers that never fire during the test (Feb 30); the runs come from --once.
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[scheduler]\nstandby_retry_seconds = 0.2\n'
                   f'roster_file = "{tmp_path / "missing.xlsx"}"\n'
                   + "".join(f'{job} = "0 0 30 2 *"\n' for job in
                             ("roster_sync", "catalog_sync", "reconcile", "evaluate", "push", "deadline_warning"))
                   + f"[metrics]\nscheduler_port = {port}\ncache_seconds = 0\n")
    return cfg


def test_scheduler_exposes_each_jobs_last_success_and_duration(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    cfg = _scheduler_config(tmp_path, db_url, port)
    open_store(db_url).dispose()
    before = time.time()
    ran = run_cli(cfg, "scheduler", "--once", "evaluate", "--json")
    assert ran.code == 0, ran.stderr
    assert run_cli(cfg, "scheduler", "--once", "roster_sync").code == 1  # its file is missing: a failed run
    log = (tmp_path / "scheduler.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "scheduler"],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            # Until it listens, and has read the store (SQLite: not while the starting scheduler writes).
            with contextlib.suppress(requests.RequestException):
                text = requests.get(url, timeout=10).text
                found = samples(text)
                if value(found, "creditbridge_store_up") == 1:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.2)
        last_ok = value(found, "creditbridge_scheduler_job_last_success_timestamp_seconds", job="evaluate")
        assert last_ok is not None and before <= last_ok <= time.time(), text
        assert value(found, "creditbridge_scheduler_job_last_success_duration_seconds", job="evaluate") >= 0
        assert value(found, "creditbridge_scheduler_job_last_run_failed", job="evaluate") == 0
        # Never succeeded: 0, so "not successful for a day" alerts on it too; its last run failed.
        assert value(found, "creditbridge_scheduler_job_last_success_timestamp_seconds", job="roster_sync") == 0
        assert value(found, "creditbridge_scheduler_job_last_run_failed", job="roster_sync") == 1
        assert value(found, "creditbridge_scheduler_job_last_success_duration_seconds", job="roster_sync") is None
        assert requests.post(url, timeout=10).status_code == 405
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()


def test_scheduler_metrics_port_in_use_is_a_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cfg = _scheduler_config(tmp_path, sqlite_url, taken.getsockname()[1])
        ran = run_cli(cfg, "scheduler", timeout=60)
    assert ran.code == 2
    assert ran.stderr.startswith("error: metrics.scheduler_port: cannot listen on 127.0.0.1:")
    cfg = _scheduler_config(tmp_path, sqlite_url, 8080)  # the default webhooks.port
    ran = run_cli(cfg, "scheduler", timeout=60)
    assert ran.code == 2
    assert ran.stderr.startswith("error: metrics.scheduler_port = 8080 is also webhooks.port")


def test_serve_leaves_no_metrics_directory_behind(sqlite_url: str, tmp_path: Path) -> None:
    receiver = start_receiver(tmp_path, sqlite_url, f"[metrics]\nport = {free_port()}\n")
    # `serve` exec'd gunicorn: the master's environment names the directory it was given.
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{receiver.proc.pid}/environ").read_text().split("\0") if "=" in item)
    made = Path(environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.parent == Path(tempfile.gettempdir()) and made.name.startswith("creditbridge-metrics-")
    assert made.is_dir() and oct(made.stat().st_mode)[-3:] == "700"
    receiver.stop()
    assert not made.exists()


def test_store_figures_cost_a_bounded_number_of_queries_and_are_cached(store: Store) -> None:
    seen = {"statements": 0}

    def on_statement(*_: object) -> None:
        seen["statements"] += 1

    event.listen(store.engine, "before_cursor_execute", on_statement)
    registry = build_registry(lambda: store, cache_seconds=60)
    first = samples(generate_latest(registry).decode())
    assert value(first, "creditbridge_store_up") == 1
    per_computation = seen["statements"]
    assert 0 < per_computation <= 25  # aggregate queries, whatever the size of the store
    for _ in range(20):  # scrapes within metrics.cache_seconds: answered from the cache
        generate_latest(registry)
    assert seen["statements"] == per_computation


def test_an_unreadable_store_still_answers_with_store_up_0() -> None:
    def broken() -> Store:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    found = samples(generate_latest(build_registry(broken, cache_seconds=0)).decode())
    assert value(found, "creditbridge_store_up") == 0
    assert value(found, "creditbridge_inbox_deliveries", state="pending") is None  # left out, not a false 0


def test_delivery_reasons_stay_a_bounded_label_set() -> None:
    for reason in ("bad_signature", "Bad Reason", "x" * 100, "11010519491231002X", *(f"r{n}" for n in range(200))):
        count_delivery(reason)
    text = generate_latest(REGISTRY).decode()
    reasons = {s.labels["reason"] for f in text_string_to_metric_families(text)
               if f.name == "creditbridge_webhook_deliveries" for s in f.samples if "reason" in s.labels}
    assert "bad_signature" in reasons and "other" in reasons
    assert len(reasons) <= 64 and "Bad Reason" not in reasons and find_id_numbers(text) == []


def test_a_worker_on_its_own_host_serves_the_backlogs_and_logs_json(db_url: str, tmp_path: Path) -> None:
    """`creditbridge worker` (continuous mode's worker, run alone) answers GET /metrics on metrics.worker_port with
    the store's figures, and its log lines follow --log-format like the scheduler's."""
    port = free_port()
    cfg = tmp_path / "worker.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[pipeline]\nmode = "continuous"\npoll_seconds = 0.2\n'
                   f"[metrics]\nworker_port = {port}\ncache_seconds = 0\n")
    open_store(db_url).dispose()
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "--log-format",
                             "json", "worker"], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                found = samples(requests.get(url, timeout=10).text)
                if value(found, "creditbridge_store_up") == 1:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert value(found, "creditbridge_evaluation_backlog") == 0
        assert requests.post(url, timeout=10).status_code == 405
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()
    lines = [line for line in (tmp_path / "worker.log").read_text().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    assert all(isinstance(json.loads(line), dict) for line in lines), lines


def test_a_worker_metrics_port_shared_with_the_scheduler_is_a_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "worker.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[metrics]\nworker_port = 9465\nscheduler_port = 9465\n')
    ran = run_cli(cfg, "worker", timeout=60)
    assert ran.code == 2
    assert ran.stderr.startswith("error: metrics.worker_port = 9465 is also metrics.scheduler_port"), ran.stderr


def test_a_sigkilled_serve_leaves_no_metrics_directory_behind_the_next_start(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kill -9` of serve never runs gunicorn's on_exit, which removes the start's counters directory; the next
    `serve` removes it (and only directories whose master is gone)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the receivers' temp directory (inherited by the subprocess)
    alive = tmp / f"{DIR_PREFIX}{os.getpid()}-keep"  # this test's own pid: a running master's directory
    alive.mkdir()
    first = start_receiver(tmp_path, sqlite_url, f"[metrics]\nport = {free_port()}\n", workers=1)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    left = [p for p in tmp.glob(f"{DIR_PREFIX}{first.proc.pid}-*")]
    assert len(left) == 1 and left[0].is_dir()  # what the kill left
    (tmp_path / "second").mkdir()
    second = start_receiver(tmp_path / "second", sqlite_url, f"[metrics]\nport = {free_port()}\n", workers=1)
    try:
        assert not left[0].exists()
        assert alive.is_dir()
        mine = list(tmp.glob(f"{DIR_PREFIX}{second.proc.pid}-*"))
        assert len(mine) == 1 and (mine[0].stat().st_mode & 0o777) == 0o700
    finally:
        second.stop()


def test_a_metrics_directory_named_after_no_possible_pid_does_not_stop_serve(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile review: any local user can make `/tmp/creditbridge-metrics-<20 digits>-x`. The clean-up asked the
    kernel about that pid (os.kill: OverflowError) and `serve` died at start with a traceback. A name that is no
    pid is nobody's serve: left alone, and serve starts."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    odd = tmp / f"{DIR_PREFIX}{2 ** 64}-x"
    odd.mkdir()
    receiver = start_receiver(tmp_path, sqlite_url, f"[metrics]\nport = {free_port()}\n", workers=1)
    try:
        mine = list(tmp.glob(f"{DIR_PREFIX}{receiver.proc.pid}-*"))
        assert len(mine) == 1 and mine[0].is_dir()
        assert odd.is_dir()
    finally:
        receiver.stop()
