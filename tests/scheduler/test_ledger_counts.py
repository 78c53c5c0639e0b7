"""A job's counts are recorded whatever numbers it returned (hostile review of #17): a NaN or an infinity in
them (a rate of nothing, say) went into the JSON column as the token NaN, which PostgreSQL refuses, so the
run's outcome was never written and it showed `running` until another scheduler marked it interrupted."""

from __future__ import annotations

from datetime import UTC, datetime

from creditbridge.store import Store
from creditbridge.store.job_ledger import claim, finish, last_run


def test_counts_with_nan_and_infinity_are_recorded(store: Store) -> None:
    run_id = claim(store, "evaluate", datetime(2026, 12, 6, 2, 0, tzinfo=UTC), "host:1")
    assert run_id is not None
    finish(store, run_id, "ok", {"rate": float("nan"), "ratio": float("inf"), "teachers": 3}, None)
    run = last_run(store, "evaluate")
    assert run is not None and run.outcome == "ok"
    assert run.counts == {"rate": None, "ratio": None, "teachers": 3}
