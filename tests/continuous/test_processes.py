"""Continuous mode as an operator runs it: `creditbridge run` and `creditbridge worker` as real processes, real
deliveries into the receiver, the registry simulator counting what arrives."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from continuous_helpers import (
    AT,
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

from creditbridge.store import Store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.credits import CreditMark, CreditResult
from creditbridge.store.models.registry import RegistrySubmission


def _versions(db: Path, teacher: str) -> list[int]:
    return sorted(r["version"] for r in registry_rows(db) if r["teacher"] == teacher)


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet
        return False


def _open_and_marked(store: Store) -> tuple[int, int]:
    with store.session() as s:
        opened = s.scalar(select(func.count()).select_from(RegistrySubmission)
                          .where(RegistrySubmission.state.in_(("pending", "sent")))) or 0
        marked = s.scalar(select(func.count()).select_from(CreditMark)) or 0
    return opened, marked


def test_a_delivery_is_registered_within_seconds(store: Store, db_url: str, tmp_path: Path) -> None:
    people = seed(store, 3)
    with running_sim(tmp_path) as sim:
        port = free_port()
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(config_text(db_url, sim.url, port=port), encoding="utf-8")
        run = start(tmp_path, cfg, "run", name="run")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for("the receiver answers", lambda: _healthy(url), 90, 0.2)
            # the worker's first pass: the whole programme (no complete evaluation yet), pushed
            wait_for("first results registered", lambda: len(registry_rows(sim.db_path)) == 3, 60, 0.2)
            body, headers = signed(completion(1001, course_ids()[ELECTIVES[0]], objectid=77), WEBHOOK_SECRET)
            sent = time.monotonic()
            answer = requests.post(url + "/webhooks/moodle", data=body, headers=headers, timeout=10)
            assert answer.status_code // 100 == 2, answer.text
            acked = time.monotonic() - sent
            wait_for("the changed result registered", lambda: _versions(sim.db_path, people[1]) == [1, 2], 15, 0.05)
            latency = time.monotonic() - sent
        finally:
            code = stop(run)
        log = (tmp_path / "run.log").read_text(errors="replace")
        assert code == 0, log[-3000:]
        assert "started worker" in log
        assert latency < 15 and acked < latency
        assert all(r["deliveries"] == 1 for r in registry_rows(sim.db_path))


@pytest.mark.postgres
def test_two_workers_one_killed_mid_batch_push_every_version_once(pg_url: str, tmp_path: Path) -> None:
    from creditbridge.store import open_store

    store = open_store(pg_url)
    try:
        _two_workers(store, pg_url, tmp_path)
    finally:
        store.dispose()


def _two_workers(store: Store, db_url: str, tmp_path: Path) -> None:
    people = seed(store, 40)
    # every batch holds its claims for a while: a kill lands inside one
    with running_sim(tmp_path, REGISTRY_SIM_LATENCY=0.05) as sim:
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(config_text(db_url, sim.url, extra="batch_teachers = 4\npush_batch = 4\n"), encoding="utf-8")
        a = start(tmp_path, cfg, "worker", name="worker-a")
        b = start(tmp_path, cfg, "worker", name="worker-b")
        c = None
        try:
            wait_for("first results registered", lambda: len(registry_rows(sim.db_path)) == 40, 90, 0.2)
            killed_at = None
            started = time.monotonic()
            # a stream of changes: every teacher completes the four electives, one at a time, as an inbox does
            for k, course in enumerate(ELECTIVES):
                for i, teacher in enumerate(people):
                    with store.session() as s:
                        s.add(LearningRecordRow(programme="sd-2022", teacher=teacher, course=course, kind="course",
                                                passed=True, occurred_at=AT, source=f"stream:{k}:{i}"))
                    time.sleep(0.01)
                    if killed_at is None and time.monotonic() - started > 1.0:
                        a.send_signal(signal.SIGKILL)
                        a.wait(10)
                        killed_at = time.monotonic()
                        c = start(tmp_path, cfg, "worker", name="worker-c")
            wait_for("every change evaluated and pushed", lambda: _open_and_marked(store) == (0, 0), 120, 0.2)
        finally:
            for p in (a, b, c):
                if p is not None:
                    stop(p)
        assert "worker started" in (tmp_path / "worker-a.log").read_text(errors="replace")
        rows = registry_rows(sim.db_path)
        with store.session() as s:
            stored = {r.teacher: r for r in s.scalars(select(CreditResult).where(CreditResult.role == "teacher"))}
            sent = {(r.teacher, r.version) for r in s.scalars(select(RegistrySubmission))
                    if r.state in ("acknowledged", "superseded") and r.attempts > 0}
        by_teacher: dict[str, list[Any]] = {}
        for r in rows:
            by_teacher.setdefault(r["teacher"], []).append(r)
        assert set(by_teacher) == set(people)
        for teacher, recs in by_teacher.items():
            versions = sorted(r["version"] for r in recs)
            assert len(versions) == len(set(versions)), "no version registered twice"
            active = [r for r in recs if r["state"] == "active"]
            assert len(active) == 1, f"one live record per teacher, got {[(r['version'], r['state']) for r in recs]}"
            assert active[0]["version"] == max(versions), "the latest version is the live one"
            payload = json.loads(active[0]["payload"])
            assert float(payload["hours"]) == float(stored[teacher].hours), "the registry holds the latest result"
        assert {(r["teacher"], r["version"]) for r in rows} == sent, "the registry holds exactly what was sent"
        # a batch in flight when a worker was killed is resent under its keys (answered as before): at most one
        resent = sum(r["deliveries"] - 1 for r in rows)
        assert resent <= 4, resent


def test_sigterm_finishes_the_batch_in_hand(store: Store, db_url: str, tmp_path: Path) -> None:
    people = seed(store, 3)
    with running_sim(tmp_path) as sim:
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(config_text(db_url, sim.url), encoding="utf-8")
        worker = start(tmp_path, cfg, "worker", name="worker")
        try:
            wait_for("first results registered", lambda: len(registry_rows(sim.db_path)) == 3, 60, 0.2)
            sim.app.config["REGISTRY_SIM_LATENCY"] = 1.5  # the next batch is in flight for 1.5 s
            calls = sim.state.calls
            with store.session() as s:
                s.add(LearningRecordRow(programme="sd-2022", teacher=people[0], course=ELECTIVES[3], kind="course",
                                        passed=True, occurred_at=AT, source="t:term"))
            wait_for("a batch in flight", lambda: sim.state.calls > calls, 20, 0.01)
            code = stop(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert code == 0
        assert _versions(sim.db_path, people[0]) == [1, 2]
        assert _open_and_marked(store) == (0, 0), "the batch in hand was recorded before the worker left"
        assert "worker stopped" in (tmp_path / "worker.log").read_text(errors="replace")
