"""ApplyContext's concurrent writes (moodle.concurrency > 1) record every batch Moodle took, whatever stops the
run: an error that is not Moodle's answer in one worker, or the store refusing one batch's record, still lets
the batches in flight be recorded, so the next run never sends them again; nothing more is sent after it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from creditbridge.connector.errors import RecordNotFoundError
from creditbridge.connector.moodle import BatchResult
from creditbridge.settings import load_settings
from creditbridge.sync.apply import ApplyContext
from creditbridge.sync.outcome import SyncOutcome

Item = dict[str, Any]


class FakeClient:
    """A Moodle client whose enrol_users takes each batch (slowly) unless it holds the item 'boom'."""

    batch_size = 2
    write_calls = 0

    def __init__(self, sent: list[list[str]], lock: threading.Lock) -> None:
        self.sent, self.lock = sent, lock
        self.transport = SimpleNamespace(policy=SimpleNamespace(max_backoff_seconds=0.0, backoff_seconds=0.0),
                                         limiter=None)

    def enrol_users(self, items: Sequence[Item]) -> BatchResult:
        names = [i["name"] for i in items]
        with self.lock:
            self.sent.append(names)
        if "boom" in names:
            raise ValueError("not Moodle's answer")
        if "a" not in names:  # the batch holding "a" comes back first; the others are still in flight then
            time.sleep(0.3)
        return BatchResult(succeeded=[(i, {}) for i in items], calls=1)

    def close(self) -> None:
        pass


def _context(sent: list[list[str]]) -> ApplyContext:
    lock = threading.Lock()
    settings = load_settings(None, env={}, overrides={"moodle": {"concurrency": 3}})
    return ApplyContext(settings=settings, store=None, client=FakeClient(sent, lock),  # type: ignore[arg-type]
                        outcome=SyncOutcome("roster", "r.csv", "sd-2022"), programme="sd-2022",
                        client_factory=lambda _s: FakeClient(sent, lock))  # type: ignore[arg-type,return-value]


def _items(*names: str) -> list[Item]:
    return [{"name": n} for n in names]


def test_an_error_in_one_worker_still_records_the_batches_in_flight_and_sends_no_more() -> None:
    sent: list[list[str]] = []
    recorded: list[str] = []
    ctx = _context(sent)
    try:
        with pytest.raises(ValueError, match="not Moodle's answer"):
            ctx.send(ctx.client.enrol_users, _items("boom", "a", "b", "c", "d", "e", "f", "g", "h", "i"),
                     lambda r: recorded.extend(i["name"] for i, _ in r.succeeded))
    finally:
        ctx.close()
    assert sorted(map(tuple, sent)) == [("b", "c"), ("boom", "a"), ("d", "e")]  # three in flight, no more
    assert sorted(recorded) == ["b", "c", "d", "e"]


def test_the_store_refusing_one_record_still_records_the_others_in_flight() -> None:
    sent: list[list[str]] = []
    recorded: list[str] = []

    def record(r: BatchResult) -> None:
        names = [i["name"] for i, _ in r.succeeded]
        if "a" in names:
            raise RuntimeError("database is locked")
        recorded.extend(names)

    ctx = _context(sent)
    try:
        with pytest.raises(RuntimeError, match="database is locked"):
            ctx.send(ctx.client.enrol_users, _items("a", "b", "c", "d", "e", "f", "g", "h"), record)
    finally:
        ctx.close()
    assert sorted(map(tuple, sent)) == [("a", "b"), ("c", "d"), ("e", "f")]  # three in flight, no more
    assert sorted(recorded) == ["c", "d", "e", "f"]


def test_read_each_reads_concurrently_in_order_and_returns_a_moodle_error_in_place() -> None:
    """Independent reads (each elective's enrolment methods) run up to moodle.concurrency at a time on the
    workers' clients; results come in the keys' order; one course's refusal is that key's result."""
    sent: list[list[str]] = []
    ctx = _context(sent)
    lock = threading.Lock()
    running = peak = 0
    clients: set[int] = set()

    def read(client: Any, key: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            clients.add(id(client))
        time.sleep(0.05)
        with lock:
            running -= 1
        if key == 5:
            raise RecordNotFoundError("Can't find data record in database table course.", errorcode="invalidrecord")
        return key * 10

    try:
        got = list(ctx.read_each(read, list(range(12))))
    finally:
        ctx.close()
    assert [k for k, _ in got] == list(range(12))
    assert [v for k, v in got if k != 5] == [k * 10 for k in range(12) if k != 5]
    assert isinstance(dict(got)[5], RecordNotFoundError)
    assert 1 < peak <= 3 and id(ctx.client) not in clients  # the workers' own clients, never the main one
