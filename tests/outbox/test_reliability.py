"""Exactly once under failure: a registry failing 30% of calls, and a push killed at 20 random points.

Both are checked on the simulator's side: every record there once, none missing, none twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from registry_helpers import SECRET, add_teachers, id_number, put_results, running_sim
from sqlalchemy import func, select

from creditbridge.outbox.service import push
from creditbridge.settings import load_settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.registry import RegistrySubmission

N = 300


def _assert_exactly_once(sim, store: Store, n: int) -> None:
    rows = sim.rows()
    per_teacher = Counter(r["teacher"] for r in rows)
    assert set(per_teacher) == {id_number(i) for i in range(n)}, "records lost"
    assert max(per_teacher.values()) == 1, "a record was recorded twice"
    assert all(r["state"] == "active" for r in rows)
    with store.session() as s:
        by_state = dict(s.execute(select(RegistrySubmission.state, func.count())
                                  .group_by(RegistrySubmission.state)).all())
    assert by_state == {"acknowledged": n}


def test_registry_failing_30_percent_of_calls(store: Store, tmp_path: Path) -> None:
    add_teachers(store, list(range(N)))
    put_results(store, [{"teacher": id_number(i), "credits": i % 6} for i in range(N)])
    with running_sim(tmp_path, REGISTRY_SIM_FAIL_RATE=0.3, REGISTRY_SIM_SEED=7, REGISTRY_SIM_HANG_SECONDS=0.6,
                     REGISTRY_SIM_FAIL_MODES=("503", "timeout", "drop")) as sim:
        settings = load_settings(None, env={}, overrides={"registry": {
            "url": sim.url, "secret": SECRET, "batch_size": 10, "timeout_seconds": 0.3, "backoff_seconds": 0.01,
            "retries": 4}})
        runs = 0
        while True:
            runs += 1
            result = push(settings, store)
            if result.pending == 0 or runs == 10:
                break
        failures = dict(sim.state.failures)
        _assert_exactly_once(sim, store, N)
        replays = sim.state.replays
    # The failures really happened, of every kind, and some answers were lost after recording.
    assert set(failures) == {"503", "timeout", "drop"}
    assert replays > 0


KILLS = 20


@pytest.mark.timeout(120)
def test_push_killed_at_20_random_points(tmp_path: Path, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    add_teachers(store, list(range(N)))
    put_results(store, [{"teacher": id_number(i)} for i in range(N)])
    rng = random.Random(20)
    with running_sim(tmp_path, REGISTRY_SIM_LATENCY=0.02) as sim:
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "{sim.url}"\nbatch_size = 3\n'
                       f'backoff_seconds = 0.01\n', encoding="utf-8")
        env = {**os.environ, "CREDITBRIDGE_REGISTRY_SECRET": SECRET}
        cmd = [sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "push", "--json"]
        killed_mid_push = 0
        for _ in range(KILLS):
            before = len(sim.rows())
            calls = sim.state.calls
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Wait for the first batch to reach the registry, then kill at a random point after it: while
            # a batch is in flight, between an answer and its commit, or while marking the next one sent.
            deadline = time.monotonic() + 15
            while sim.state.calls == calls and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.returncode == -signal.SIGKILL and before < len(sim.rows()) < N:
                killed_mid_push += 1
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert final.returncode == 0, final.stderr
        _assert_exactly_once(sim, store, N)
    store.dispose()
    # Most kills must have landed while records were flowing, or the test proves little.
    assert killed_mid_push >= KILLS // 2, killed_mid_push
