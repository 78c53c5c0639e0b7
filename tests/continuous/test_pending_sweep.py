"""Deliveries the receivers left pending (their background queue full, a failed background batch, a dead worker)
are turned into records by the continuous worker once older than pipeline.pending_after_seconds, then evaluated
and pushed; several workers and a receiver taking the same deliveries at once never process one twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from continuous_helpers import (
    ELECTIVES,
    WEBHOOK_SECRET,
    completion,
    config_text,
    course_ids,
    registry_rows,
    seed,
    start,
    stop,
    wait_for,
)
from registry_helpers import running_sim
from sqlalchemy import func, select
from webhook_helpers import free_port, signed

from creditbridge.runner.worker import Worker
from creditbridge.settings import load_settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.payload import webhook_id
from creditbridge.webhooks.processing import process_pending


def _settings(tmp_path: Path, db_url: str, registry_url: str, extra: str = "") -> Any:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(db_url, registry_url, extra=extra), encoding="utf-8")
    return load_settings(cfg, env={})


def _left_pending(store: Store, deliveries: list[dict[str, Any]], age: timedelta) -> list[str]:
    """Stored as the receiver stores a delivery it could not queue for its background thread: committed,
    `pending`, received `age` ago. Their webhook ids."""
    wids = [webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"])
            for p in deliveries]
    with store.session() as s:
        for wid, p in zip(wids, deliveries, strict=True):
            s.add(WebhookDelivery(webhook_id=wid, event=p["event"], payload=p, state="pending",
                                  received_at=utcnow() - age))
    return wids


def _states(store: Store) -> dict[str, int]:
    with store.session() as s:
        return dict(s.execute(select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)).all())


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet
        return False


def _drain(worker: Worker, rounds: int = 50) -> None:
    for _ in range(rounds):
        if not worker.round():
            return
    raise AssertionError("the worker still had work after 50 rounds")


def test_worker_takes_deliveries_left_pending_after_the_grace_period(store: Store, db_url: str,
                                                                      tmp_path: Path) -> None:
    people = seed(store, 4)
    elective = course_ids()[ELECTIVES[0]]
    with running_sim(tmp_path) as sim:
        worker = Worker(_settings(tmp_path, db_url, sim.url, "pending_after_seconds = 10\n"), store)
        _drain(worker)  # the first whole-programme pass, version 1 of each teacher registered
        assert len(registry_rows(sim.db_path)) == 4
        # teachers 0 and 1: left pending 30 s ago; teacher 2: stored just now, still the receiver's to process
        _left_pending(store, [completion(1000, elective, 1), completion(1001, elective, 2)], timedelta(seconds=30))
        _left_pending(store, [completion(1002, elective, 3)], timedelta(seconds=0))
        _drain(worker)
        assert worker.totals["inbox_processed"] == 2 and worker.totals["inbox_records"] == 2
        assert _states(store) == {"processed": 2, "pending": 1}
        versions = {(r["teacher"], r["version"]) for r in registry_rows(sim.db_path)}
        assert {(people[0], 2), (people[1], 2)} <= versions
        assert (people[2], 2) not in versions and (people[3], 2) not in versions
        # once past the grace period the young one is taken too
        with store.session() as s:
            s.execute(WebhookDelivery.__table__.update().values(received_at=utcnow() - timedelta(seconds=11)))
        _drain(worker)
        assert _states(store) == {"processed": 3}
        assert (people[2], 2) in {(r["teacher"], r["version"]) for r in registry_rows(sim.db_path)}
        assert all(r["deliveries"] == 1 for r in registry_rows(sim.db_path)), "nothing sent twice"


def test_sweep_is_bounded_per_round(store: Store, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    seed(store, 6)
    elective = course_ids()[ELECTIVES[1]]
    monkeypatch.setattr("creditbridge.runner.worker.SWEEP_BATCH", 4)
    worker = Worker(_settings(tmp_path, db_url, "http://127.0.0.1:9", "pending_after_seconds = 1\n"), store)
    _left_pending(store, [completion(1000 + i, elective, 10 + i) for i in range(6)], timedelta(minutes=5))
    assert worker.sweep_inbox() == 4
    assert _states(store) == {"processed": 4, "pending": 2}
    assert worker.sweep_inbox() == 2
    assert worker.sweep_inbox() == 0
    assert worker.totals["inbox_processed"] == 6


@pytest.mark.postgres
def test_two_workers_and_a_receiver_never_process_a_delivery_twice(pg_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("creditbridge.runner.worker.SWEEP_BATCH", 10)  # many small claims, so they interleave
    store = open_store(pg_url)
    try:
        seed(store, 60)
        ids = course_ids()
        courses = [ids[c] for c in ELECTIVES]
        # 240 deliveries (60 teachers x 4 electives), all left pending a minute ago
        deliveries = [completion(1000 + t, c, 100 + k * 60 + t) for k, c in enumerate(courses) for t in range(60)]
        wids = _left_pending(store, deliveries, timedelta(minutes=1))
        settings = _settings(tmp_path, pg_url, "http://127.0.0.1:9", "pending_after_seconds = 0\n")
        workers = [Worker(settings, store) for _ in range(2)]  # their sweeps only: the other tests push
        receiver_processed = [0]
        start_line = threading.Barrier(3)

        def sweep(w: Worker) -> None:
            start_line.wait()
            while w.sweep_inbox():
                pass

        def receiver() -> None:
            # the receiver's background thread taking its deliveries by id, in small batches, at the same time
            start_line.wait()
            for k in range(0, len(wids), 8):
                receiver_processed[0] += process_pending(settings, store, webhook_ids=wids[k:k + 8],
                                                         chunk_size=8).processed

        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(sweep, workers[0]), pool.submit(sweep, workers[1]), pool.submit(receiver)]:
                f.result()
        processed = [w.totals["inbox_processed"] for w in workers] + receiver_processed
        assert sum(processed) == len(deliveries), processed
        assert sum(1 for n in processed if n) >= 2, f"they ran side by side: {processed}"
        assert _states(store) == {"processed": len(deliveries)}
        with store.session() as s:
            records = s.scalar(select(func.count()).select_from(LearningRecordRow)
                               .where(LearningRecordRow.source.like("moodle:%")))
        assert records == len(deliveries)
    finally:
        store.dispose()


def test_run_registers_deliveries_a_full_receiver_queue_left_pending(store: Store, db_url: str,
                                                                       tmp_path: Path) -> None:
    """`creditbridge run` whose receiver queues at most one delivery for its background thread: a burst leaves
    most of it pending in the inbox, and the worker still gets every changed result registered."""
    people = seed(store, 30)
    elective = course_ids()[ELECTIVES[2]]
    with running_sim(tmp_path) as sim:
        port = free_port()
        cfg = tmp_path / "creditbridge.toml"
        text_ = config_text(db_url, sim.url, port=port, extra="pending_after_seconds = 1\n")
        cfg.write_text(text_.replace("workers = 1\n", "workers = 1\nbackground_queue = 1\n"), encoding="utf-8")
        run = start(tmp_path, cfg, "run", name="run")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for("the receiver answers", lambda: _healthy(url), 90, 0.2)
            wait_for("first results registered", lambda: len(registry_rows(sim.db_path)) == 30, 90, 0.2)

            def send(i: int) -> int:
                body, headers = signed(completion(1000 + i, elective, objectid=500 + i), WEBHOOK_SECRET)
                return requests.post(url + "/webhooks/moodle", data=body, headers=headers, timeout=30).status_code

            with ThreadPoolExecutor(10) as pool:
                codes = list(pool.map(send, range(30)))
            assert all(c // 100 == 2 for c in codes), codes

            def all_v2() -> bool:
                got = {r["teacher"] for r in registry_rows(sim.db_path) if r["version"] == 2}
                return got == set(people)
            wait_for("every changed result registered", all_v2, 60, 0.2)
        finally:
            code = stop(run)
        log = (tmp_path / "run.log").read_text(errors="replace")
        assert code == 0, log[-3000:]
        assert "taken from the inbox" in log, "the burst overflowed the receiver's queue of one"
        assert _states(store) == {"processed": 30}
        assert all(r["deliveries"] == 1 for r in registry_rows(sim.db_path)), "nothing sent twice"
