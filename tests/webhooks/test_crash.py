"""A receiver under gunicorn, killed with SIGKILL under load, keeps every acknowledged delivery: on SQLite and
PostgreSQL, under gevent workers (the default) and gthread workers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from webhook_helpers import payload, signed, start_receiver

from creditbridge.store import open_store
from creditbridge.store.models.intake import WebhookDelivery


def start(tmp_path: Path, db_url: str, worker_class: str) -> tuple[subprocess.Popen, str]:
    receiver = start_receiver(tmp_path, db_url, worker_class=worker_class)
    return receiver.proc, receiver.url


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_sigkill_under_load_loses_no_acknowledged_delivery(tmp_path, db_url, worker_class):
    proc, url = start(tmp_path, db_url, worker_class)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(offset: int) -> None:
        http = requests.Session()
        for i in range(offset, offset + 150):
            if stop.is_set():
                return
            body, headers = signed(payload(userid=1000 + i, objectid=i + 1))
            try:
                r = http.post(url + "/webhooks/moodle", data=body, headers=headers, timeout=5)
            except requests.RequestException:
                return
            if r.status_code in (200, 202):
                with lock:
                    acked.append(headers["webhook-id"])

    threads = [threading.Thread(target=client, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 150 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # master and workers, mid-load
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acked) >= 150
    store = open_store(db_url)
    with store.session() as s:
        stored = set(s.scalars(select(WebhookDelivery.webhook_id)))
    store.dispose()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged deliveries lost"


def test_concurrent_senders_under_gevent_store_each_delivery_once(tmp_path, db_url):
    """Eight senders at once, a quarter of their deliveries repeats of each other's: every delivery is stored
    once, exactly one answer per delivery is 202, and on PostgreSQL the greenlets' rows shared commits."""
    proc, url = start(tmp_path, db_url, "gevent")
    distinct = [signed(payload(userid=2000 + i, objectid=3000 + i)) for i in range(240)]
    sends = distinct + distinct[::4]  # 300 deliveries, 60 of them repeats
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client(part: int) -> None:
        http = requests.Session()
        for body, headers in sends[part::8]:
            r = http.post(url + "/webhooks/moodle", data=body, headers=headers, timeout=10)
            with lock:
                answers.append((r.status_code, headers["webhook-id"]))

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # /healthz reports the worker that answers it, and which one does is up to the kernel: ask until some
        # worker has batched (or 40 times, enough to reach both).
        health = []
        for _ in range(40):
            health.append(requests.get(url + "/healthz", timeout=5).json())
            b, d = health[-1]["store_batches"]["batches"], health[-1]["store_batches"]["deliveries"]
            if 0 < b < d:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(answers) == 300 and {s for s, _ in answers} <= {200, 202}
    accepted = [wid for s, wid in answers if s == 202]
    assert len(accepted) == len(set(accepted)) == 240
    store = open_store(db_url)
    with store.session() as s:
        stored = list(s.scalars(select(WebhookDelivery.webhook_id)))
    store.dispose()
    assert sorted(stored) == sorted(set(accepted))
    if db_url.startswith("postgresql"):
        # per worker: fewer commits than deliveries, i.e. deliveries waited on the database together
        batches = {(h["store_batches"]["batches"], h["store_batches"]["deliveries"]) for h in health}
        assert any(0 < b < d for b, d in batches), batches
