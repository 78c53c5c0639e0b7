"""Continuous mode reads its steps from pipeline.py: the worker's round runs the pipeline's continuous steps in
the declared order, and a whole programme goes through the pipeline's EVALUATE step."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from continuous_helpers import seed

from creditbridge import CreditbridgeError
from creditbridge.pipeline import CONTINUOUS, EVALUATE, PIPELINE, PUSH, ROSTER, StepInput
from creditbridge.runner import worker as worker_module
from creditbridge.runner.worker import Worker
from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store, open_store


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    s = open_store(sqlite_url)
    try:
        yield s
    finally:
        s.dispose()


def _settings(url: str) -> Settings:
    return load_settings(None, env={}, overrides={"database": {"url": url}, "pipeline": {"mode": "continuous"}})


def _recording(worker: Worker) -> list[str]:
    """Replace the round's parts with recorders that say they did one thing each."""
    calls: list[str] = []

    def part(name: str) -> Any:
        def run() -> int:
            calls.append(name)
            return 1
        return run

    worker.check_programmes = lambda: None  # type: ignore[method-assign]
    worker.sweep_inbox = part("sweep")  # type: ignore[method-assign]
    worker.evaluate_batch = part("evaluate")  # type: ignore[method-assign]
    worker.push_batch = part("push")  # type: ignore[method-assign]
    return calls


def test_continuous_steps_are_the_pipelines_in_its_order() -> None:
    assert CONTINUOUS == (EVALUATE, PUSH)
    positions = [PIPELINE.index(step) for step in CONTINUOUS]
    assert positions == sorted(positions)


def test_a_round_runs_the_declared_steps_in_the_declared_order(sqlite_store: Store, sqlite_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(_settings(sqlite_url), sqlite_store)
    calls = _recording(worker)
    assert worker.round() is True
    assert calls == ["sweep", "evaluate", "push"]

    # The same worker code follows a declaration in another order: the order is pipeline.py's, not the worker's.
    monkeypatch.setattr(worker_module, "CONTINUOUS", (PUSH, EVALUATE))
    calls.clear()
    worker.round()
    assert calls == ["sweep", "push", "evaluate"]

    monkeypatch.setattr(worker_module, "CONTINUOUS", (EVALUATE,))
    calls.clear()
    worker.round()
    assert calls == ["sweep", "evaluate"]


def test_a_continuous_step_without_a_micro_batch_form_stops_the_worker_at_start(
        sqlite_store: Store, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "CONTINUOUS", (*CONTINUOUS, dataclasses.replace(ROSTER, continuous=True)))
    with pytest.raises(CreditbridgeError, match="roster"):
        Worker(_settings(sqlite_url), sqlite_store)


def test_a_whole_programme_runs_through_the_pipelines_evaluate_step(sqlite_store: Store, sqlite_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seed(sqlite_store, 3)  # no complete run of sd-2022 yet: the worker evaluates the whole programme
    given: list[StepInput] = []

    def run(settings: Settings, store: Store, step_input: StepInput) -> Any:
        given.append(step_input)
        return EVALUATE.run(settings, store, step_input)

    monkeypatch.setattr(worker_module, "EVALUATE", dataclasses.replace(EVALUATE, run=run))
    worker = Worker(_settings(sqlite_url), sqlite_store)
    worker.check_programmes()
    assert given == [StepInput(programme="sd-2022", incremental=True, wait=True)]
    assert worker.totals["programme_runs"] == 1 and worker.totals["built"] == 3
