"""The receiver's background processing takes what queued up as one batch (up to BackgroundProcessor.BATCH): a
burst of deliveries costs a few transactions, not one per hundred, and ends exactly as one at a time does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_processing_chunks import mixed_inbox, put, seed_many, snapshot
from webhook_helpers import settings_for

from creditbridge.store import Store, open_store
from creditbridge.webhooks import background as background_module  # where the thread looks process_pending up
from creditbridge.webhooks import processing
from creditbridge.webhooks.background import BackgroundProcessor
from creditbridge.webhooks.processing import IntakeResult, process_pending_one_by_one


def test_a_burst_is_processed_in_large_batches_with_the_one_by_one_outcome(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    twin = open_store(f"sqlite:///{tmp_path / 'twin.db'}")
    calls: list[tuple[int, int]] = []
    real = processing.process_pending

    def counted(*args: Any, **kwargs: Any) -> IntakeResult:
        calls.append((len(kwargs["webhook_ids"]), kwargs["chunk_size"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(background_module, "process_pending", counted)
    try:
        for st in (store, twin):
            seed_many(st)
        burst = mixed_inbox(3, 450)
        wids = put(store, burst)
        put(twin, burst)
        bg = BackgroundProcessor(store, settings_for(store.url), maxsize=10_000)
        for wid in wids:
            assert bg.submit(wid)
        assert bg.drain(60.0)
        process_pending_one_by_one(settings_for(twin.url), twin)

        assert sum(n for n, _ in calls) == 450
        # Each call is one transaction over its ids; the first may hold only what had queued when the thread
        # started, the rest arrive together (the old limit was 100 per call, in chunks of 200).
        assert all(chunk == n for n, chunk in calls)
        assert max(n for n, _ in calls) > 200
        assert len(calls) <= 3
        # Which of several revocations of one activity is named in withdrawn_by follows arrival order one at a
        # time and time order within a chunk (processing.apply_revocations, as for any chunk size); what is
        # withdrawn, every record, every state and every parked reason are the same.
        (recs, states, parked), (twin_recs, twin_states, twin_parked) = snapshot(store), snapshot(twin)
        assert [(*r[:7], r[7] is not None) for r in recs] == [(*r[:7], r[7] is not None) for r in twin_recs]
        assert (states, parked) == (twin_states, twin_parked)
        assert len(recs) > 200
    finally:
        twin.dispose()
