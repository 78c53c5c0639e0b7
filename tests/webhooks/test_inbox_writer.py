"""Group commit in the receiver (webhooks/inbox_writer.py): deliveries in flight together share one INSERT and
commit; repeats among them store one row; a batch the database fails acknowledges nothing and loses nothing.

To make a batch form on purpose, another transaction inserts a webhook id and keeps its transaction open: the
writer storing that id waits for it (on SQLite every writer waits, for the write lock), and the deliveries
arriving meanwhile queue up for the next batch."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from webhook_helpers import ID_NUMBER, payload, settings_for, signed

from creditbridge.store import Store, open_store
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all
from creditbridge.webhooks.inbox_writer import InboxWriteError, InboxWriter

Delivery = tuple[bytes, dict[str, str]]


class Blocker:
    """An open transaction holding an uncommitted inbox row with `wid`."""

    def __init__(self, store: Store, wid: str) -> None:
        self.conn = store.engine.connect()
        self.trans = self.conn.begin()
        self.conn.execute(insert(WebhookDelivery).values(webhook_id=wid, event="course_completed", payload={},
                                                         state="pending", received_at=utcnow()))

    def pid(self) -> int:
        return self.conn.scalar(text("SELECT pg_backend_pid()"))

    def release(self) -> None:
        try:
            self.trans.rollback()
        finally:
            self.conn.close()


def wait_for(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("timed out waiting")


@pytest.fixture
def receiver(db_url: str) -> Iterator[tuple[Flask, Store]]:
    store = open_store(db_url)
    settings = settings_for(db_url)
    settings.webhooks.process_inline = False  # inbox only: what is asserted here is the store
    app = create_app({"SETTINGS": settings})
    try:
        yield app, store
    finally:
        close_app(app)
        store.dispose()


def post_in_thread(app: Flask, delivery: Delivery, answers: list[tuple[int, dict]]) -> threading.Thread:
    def run() -> None:
        r = app.test_client().post("/webhooks/moodle", data=delivery[0], headers=delivery[1])
        answers.append((r.status_code, r.json))
    t = threading.Thread(target=run)
    t.start()
    return t


def writer_of(app: Flask) -> InboxWriter:
    return wait_for(lambda: app.extensions.get("creditbridge_inbox_writer"))


def hold_the_writer(app: Flask, store: Store, delivery: Delivery, answers: list) -> tuple[Blocker, threading.Thread]:
    """Send `delivery` and keep it in the database until the blocker is released: its request is the writer."""
    blocker = Blocker(store, delivery[1]["webhook-id"])
    t = post_in_thread(app, delivery, answers)
    writer = writer_of(app)
    wait_for(lambda: writer.writing and writer.queued == 0)  # it took its batch and waits for the database
    return blocker, t


def queue_up(app: Flask, sends: list[Delivery], answers: list) -> list[threading.Thread]:
    """Send each delivery once the previous one is queued behind the batch being written, so the queue holds
    them in this order."""
    writer = writer_of(app)
    threads = []
    for k, d in enumerate(sends, 1):
        threads.append(post_in_thread(app, d, answers))
        wait_for(lambda k=k: writer.queued == k)
    return threads


def stored_ids(store: Store) -> list[str]:
    with store.session() as s:
        return sorted(s.scalars(select(WebhookDelivery.webhook_id)))


def test_repeats_in_flight_in_one_batch_store_one_row_and_answer_duplicate(receiver):
    app, store = receiver
    first = signed(payload(objectid=1))
    retried = signed(payload(objectid=2))  # the same delivery five times at once, e.g. a sender's retries
    others = [signed(payload(objectid=10 + k)) for k in range(3)]
    answers: list[tuple[int, dict]] = []
    blocker, a = hold_the_writer(app, store, first, answers)
    threads = queue_up(app, [retried, *others, retried, retried, first, retried, retried], answers)
    writer = writer_of(app)
    assert answers == [] and writer.batches == 0  # nothing acknowledged while nothing is committed
    blocker.release()
    for t in [a, *threads]:
        t.join(30)
    assert (writer.batches, writer.deliveries) == (2, 10)  # the first alone, then all nine queued behind it
    by_id: dict[str, list[int]] = {}
    for status, body in answers:
        by_id.setdefault(body["webhook_id"], []).append(status)
    assert sorted(by_id[retried[1]["webhook-id"]]) == [200, 200, 200, 200, 202]
    assert sorted(by_id[first[1]["webhook-id"]]) == [200, 202]
    assert all(by_id[d[1]["webhook-id"]] == [202] for d in others)
    assert stored_ids(store) == sorted(d[1]["webhook-id"] for d in [first, retried, *others])
    assert read_all(store) == {"duplicate": 5}
    health = app.test_client().get("/healthz").json
    assert health["store_batches"] == {"batches": 2, "deliveries": 10}
    assert health["outcomes"] == {"accepted": 5, "duplicate": 5}


def test_a_row_the_database_refuses_fails_only_its_own_delivery(db_url, caplog):
    store = open_store(db_url)
    writer = InboxWriter(store)
    p = payload(objectid=30)
    p["user"]["idnumber"] = ID_NUMBER
    body = json.dumps(p)
    results: dict[str, Any] = {}

    def store_one(key: str, wid: str, event: Any) -> threading.Thread:
        def run() -> None:
            try:
                results[key] = writer.store_delivery(wid, event, body)
            except InboxWriteError as e:
                results[key] = e
        t = threading.Thread(target=run)
        t.start()
        return t

    blocker = Blocker(store, "msg_first")
    threads = [store_one("first", "msg_first", "course_completed")]
    wait_for(lambda: writer.writing and writer.queued == 0)
    # A NOT NULL column left empty: the database refuses the whole multi-row insert.
    for k, (key, wid, event) in enumerate([("good0", "msg_good0", "course_completed"), ("bad", "msg_bad", None),
                                           ("good1", "msg_good1", "course_completed"),
                                           ("good0 again", "msg_good0", "course_completed")], 1):
        threads.append(store_one(key, wid, event))
        wait_for(lambda k=k: writer.queued == k)
    with caplog.at_level(logging.WARNING, logger="creditbridge.webhooks.inbox_writer"):
        blocker.release()
        for t in threads:
            t.join(30)
    assert isinstance(results.pop("bad"), InboxWriteError)
    assert results == {"first": True, "good0": True, "good1": True, "good0 again": False}
    assert stored_ids(store) == ["msg_first", "msg_good0", "msg_good1"]
    assert read_all(store) == {"duplicate": 1}
    assert "one by one" in caplog.text and "msg_bad" in caplog.text
    # The database's detail lines quote the row, payload and ID number included: never logged.
    assert ID_NUMBER not in caplog.text and '"username"' not in caplog.text
    writer.close()
    store.dispose()


def test_database_lost_mid_batch_acknowledges_nothing_and_the_retries_store_everything(pg_url, pg_admin_url):
    store = open_store(pg_url)
    settings = settings_for(pg_url)
    settings.webhooks.process_inline = False
    app = create_app({"SETTINGS": settings})
    c = app.test_client()
    earlier = signed(payload(objectid=1))
    assert c.post("/webhooks/moodle", data=earlier[0], headers=earlier[1]).status_code == 202
    first = signed(payload(objectid=2))
    batch = [signed(payload(objectid=10 + k)) for k in range(4)] + [earlier]
    answers: list[tuple[int, dict]] = []
    blocker, a = hold_the_writer(app, store, first, answers)
    blocker_pid = blocker.pid()
    threads = queue_up(app, batch, answers)
    name = make_url(pg_url).database
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # The database goes away: no new connections, and the open ones are cut, the writer's (waiting on the
        # blocker's row) before the blocker's, so its insert never gets the chance to commit.
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                          "WHERE datname = :db AND pid <> :blocker"), {"db": name, "blocker": blocker_pid})
        conn.execute(text("SELECT pg_terminate_backend(:blocker, 10000)"), {"blocker": blocker_pid})
    for t in [a, *threads]:
        t.join(30)
    with contextlib.suppress(OperationalError):  # its connection was cut on purpose
        blocker.release()
    assert sorted(status for status, _ in answers) == [503] * 6  # the earlier one's repeat is not confirmed either
    assert {body["reason"] for _, body in answers} == {"store_error"}
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    admin.dispose()
    assert stored_ids(store) == [earlier[1]["webhook-id"]]  # nothing of the failed batches half-written
    # The sender retries what was not acknowledged; a fresh connection takes them.
    statuses = [c.post("/webhooks/moodle", data=b, headers=h).status_code for b, h in [first, *batch]]
    assert statuses == [202, 202, 202, 202, 202, 200]
    assert stored_ids(store) == sorted(d[1]["webhook-id"] for d in [earlier, first, *batch[:4]])
    assert read_all(store) == {"duplicate": 1}
    close_app(app)
    store.dispose()


def test_many_concurrent_senders_with_repeats_make_exactly_one_row_each(receiver):
    app, store = receiver
    unique = [signed(payload(objectid=100 + k)) for k in range(60)]
    sends = unique + unique[::3] + unique[::5]  # 92 requests, 32 of them repeats, often in flight together
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def sender(part: list[Delivery]) -> None:
        client = app.test_client()
        for body, headers in part:
            r = client.post("/webhooks/moodle", data=body, headers=headers)
            with lock:
                answers.append((r.status_code, r.json))

    threads = [threading.Thread(target=sender, args=(sends[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == len(sends)
    accepted = [body["webhook_id"] for status, body in answers if status == 202]
    assert sorted(accepted) == sorted(d[1]["webhook-id"] for d in unique)  # each id acknowledged as new once
    assert sum(1 for status, _ in answers if status == 200) == len(sends) - len(unique)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == len(unique)
    assert read_all(store) == {"duplicate": len(sends) - len(unique)}
    writer = writer_of(app)
    assert writer.deliveries == len(sends) and 1 <= writer.batches <= len(sends)
