"""Chunked processing of the inbox: the same outcome as one delivery at a time, in a fraction of the work."""

from __future__ import annotations

import random
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from webhook_helpers import ID_NUMBER, payload, seed, settings_for

from creditbridge.records.id_number import check_digit
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.webhooks import processing
from creditbridge.webhooks.payload import webhook_id
from creditbridge.webhooks.processing import IntakeResult, list_parked, process_pending, process_pending_one_by_one


def put(store: Store, payloads: list[dict[str, Any]]) -> list[str]:
    """Store deliveries in the inbox as the receiver does (pending), returning their webhook ids in order."""
    wids = []
    with store.session() as s:
        for p in payloads:
            wid = webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"])
            s.add(WebhookDelivery(webhook_id=wid, event=p["event"], payload=p))
            wids.append(wid)
    return wids


def rows(store: Store) -> list[LearningRecordRow]:
    with store.session() as s:
        return list(s.scalars(select(LearningRecordRow).order_by(LearningRecordRow.source)))


def states(store: Store) -> dict[str, str]:
    with store.session() as s:
        return dict(s.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.state)).all())


def id_number(n: int) -> str:
    body = f"37010219800101{n:03d}"
    return body + check_digit(body)


def seed_many(store: Store, teachers: int = 6, courses: int = 3) -> None:
    """Teachers with Moodle ids 100.. (the odd ones known only by username), courses with Moodle ids 50..
    (the last known only by its Moodle id: its Moodle idnumber is not a catalog code)."""
    with store.session() as s:
        for i in range(teachers):
            s.add(Teacher(programme="sd-2022", id_number=id_number(i), name=f"T{i}", school_code="S1",
                          school_name="S", county="C", city="J", stage="primary", username=f"u{i}",
                          moodle_user_id=None if i % 2 else 100 + i))
        for j in range(courses):
            s.add(CatalogCourse(programme="sd-2022", code=f"C{j}", title=f"Course {j}", kind="required",
                                hours=Decimal(j + 1), moodle_course_id=50 + j))


def mixed_inbox(seed_value: int, n: int) -> list[dict[str, Any]]:
    """Completions, grades, revocations (some before, some after their completion), repeats of the same
    fact under another webhook id, unknown users and courses: everything one chunk can meet."""
    rnd = random.Random(seed_value)
    out = []
    for k in range(n):
        u = rnd.choice([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 7])  # 6 and 7 are unknown
        c = rnd.choice([0, 0, 1, 2, 3])  # 3 is unknown
        event = rnd.choice(["course_completed", "activity_completion_updated", "activity_completion_updated",
                            "grade_updated"])
        state = rnd.choice([0, 1, 1, 2, 3])
        p = payload(event, userid=100 + u, username=f"u{u}", courseid=50 + c,
                    course_idnumber="" if c == 2 else f"C{c}", cmid=rnd.randrange(1, 3), state=state,
                    objectid=k, timecreated=1795385000 + rnd.randrange(40) * 10)
        if p["activity"] is not None:
            p["grade"] = 80.0 if event == "grade_updated" else None
        out.append(p)
    return out


def snapshot(store: Store) -> tuple[list[tuple[Any, ...]], dict[str, str], list[tuple[str, str, int]]]:
    recs = [(r.source, r.kind, r.teacher, r.course, r.activity, r.hours, r.passed, r.withdrawn_by)
            for r in rows(store)]
    parked = sorted((p["webhook_id"], p["reason"], p["attempts"]) for p in list_parked(store))
    return recs, states(store), parked


def test_chunks_give_exactly_what_one_by_one_gives(store: Store, tmp_path: Path) -> None:
    """Two rounds (the second after a sync made user 7 known) on this backend in chunks of 7, and on a
    SQLite twin one delivery at a time: same counters, same rows, same withdrawals, same parked reasons."""
    twin = open_store(f"sqlite:///{tmp_path / 'twin.db'}")
    try:
        for st in (store, twin):
            seed_many(st)
        first = mixed_inbox(1, 120)
        put(store, first)
        put(twin, first)
        a = process_pending(settings_for(store.url), store, chunk_size=7)
        b = process_pending_one_by_one(settings_for(twin.url), twin)
        assert a == b
        assert a.parked > 0 and a.duplicates > 0 and a.withdrawn > 0 and a.records > 50
        assert snapshot(store) == snapshot(twin)
        for st in (store, twin):
            with st.session() as s:
                s.add(Teacher(programme="sd-2022", id_number=id_number(7), name="T7", school_code="S1",
                              school_name="S", county="C", city="J", stage="primary", username="u7",
                              moodle_user_id=107))
        second = mixed_inbox(2, 60)
        put(store, second)
        put(twin, second)
        a = process_pending(settings_for(store.url), store, chunk_size=7)
        b = process_pending_one_by_one(settings_for(twin.url), twin)
        assert a == b
        assert snapshot(store) == snapshot(twin)
        assert any(attempts == 2 for _, _, attempts in snapshot(store)[2])  # still-unknown ones retried
    finally:
        twin.dispose()


def test_duplicate_inside_the_chunk_and_one_already_stored(store: Store) -> None:
    seed(store)
    [first] = put(store, [payload(objectid=1, timecreated=1795385000)])
    assert process_pending(settings_for(store.url), store).records == 1
    # The same course completion twice more (a re-sent event has another objectid/time, same source) and
    # an activity completion twice under two webhook ids (the same event in two sites' spellings).
    again = [payload(objectid=2, timecreated=1795385100), payload(objectid=3, timecreated=1795385200),
             payload("activity_completion_updated", objectid=4, timecreated=1795385300),
             payload("activity_completion_updated", objectid=5, timecreated=1795385300)]
    wids = put(store, again)
    out = process_pending(settings_for(store.url), store)
    assert out.as_json() == {"processed": 4, "records": 1, "duplicates": 3, "parked": 0, "rejected": 0, "withdrawn": 0}
    assert sorted(r.kind for r in rows(store)) == ["activity", "course"]
    assert all(states(store)[w] == "processed" for w in [first, *wids])


def test_revocation_after_its_completion_in_the_same_chunk(store: Store) -> None:
    seed(store)
    put(store, [payload("activity_completion_updated", state=1, objectid=1, timecreated=1795385000),
                payload("activity_completion_updated", state=0, objectid=2, timecreated=1795385100),
                payload("activity_completion_updated", state=2, objectid=3, timecreated=1795385200)])
    out = process_pending(settings_for(store.url), store)
    assert out.as_json() == {"processed": 3, "records": 3, "duplicates": 0, "parked": 0, "rejected": 0, "withdrawn": 1}
    got = {r.source.rsplit(":", 1)[1]: r for r in rows(store)}
    assert got["1795385100"].kind == "revocation"
    assert got["1795385000"].withdrawn_by == got["1795385100"].source
    assert got["1795385200"].withdrawn_by is None  # completed again after the revocation: counts
    # A revocation in a later chunk withdraws what an earlier chunk stored.
    put(store, [payload("activity_completion_updated", state=0, objectid=4, timecreated=1795385300)])
    assert process_pending(settings_for(store.url), store).withdrawn == 1
    assert all(r.withdrawn_by is not None for r in rows(store) if r.kind == "activity")


@pytest.mark.parametrize("process", [process_pending, process_pending_one_by_one])
@pytest.mark.parametrize("same_chunk", [True, False])
def test_completion_arriving_after_its_revocation_is_withdrawn(store: Store, process: Any, same_chunk: bool) -> None:
    """Moodle's adhoc tasks can deliver out of order (a failed send retried after the next event's send, two
    workers): a completion stored after the revocation that revoked it is withdrawn all the same, and one made
    after the revocation (a re-completion) still counts."""
    seed(store)
    revoke = payload("activity_completion_updated", state=0, objectid=2, timecreated=1795385100)
    late = [payload("activity_completion_updated", state=1, objectid=1, timecreated=1795385000),
            payload("activity_completion_updated", state=1, objectid=3, timecreated=1795385200)]
    if same_chunk:
        put(store, [revoke, *late])
        out = process(settings_for(store.url), store)
    else:
        put(store, [revoke])
        assert process(settings_for(store.url), store).withdrawn == 0
        put(store, late)
        out = process(settings_for(store.url), store)
    assert out.withdrawn == 1 and out.records == (3 if same_chunk else 2)
    got = {r.source.rsplit(":", 1)[1]: r for r in rows(store)}
    assert got["1795385000"].withdrawn_by == got["1795385100"].source
    assert got["1795385200"].withdrawn_by is None


@pytest.mark.postgres
def test_revocation_and_its_completion_processed_at_once_by_two_workers(pg_url: str) -> None:
    """Two processors (receiver workers) each hold one half in an open transaction: the second to get there waits
    for the first to commit, then sees its row, so the completion is withdrawn whichever commits first."""
    store = open_store(pg_url)
    try:
        seed(store)
        [revoke_id] = put(store, [payload("activity_completion_updated", state=0, objectid=2, timecreated=1795385100)])
        [done_id] = put(store, [payload("activity_completion_updated", state=1, objectid=1, timecreated=1795385000)])
        conf = settings_for(pg_url)
        first = store.sessions()
        # Worker 1 processes the revocation and stays inside its transaction (as if the chunk went on).
        out1 = processing._process_chunk(first, "sd-2022", ["pending"], [revoke_id], 0, 10**9, 10, [], 10, [])
        assert out1["records"] == 1 and out1["withdrawn"] == 0  # nothing to withdraw yet
        result: dict[str, Any] = {}

        def second() -> None:
            result["out"] = process_pending(conf, store, webhook_ids=[done_id])

        t = threading.Thread(target=second)
        t.start()
        t.join(1.0)
        assert t.is_alive(), "worker 2 must wait for worker 1's transaction"
        first.commit()
        first.close()
        t.join(30)
        assert result["out"].records == 1 and result["out"].withdrawn == 1
        got = {r.source.rsplit(":", 1)[1]: r for r in rows(store)}
        assert got["1795385000"].withdrawn_by == got["1795385100"].source
    finally:
        store.dispose()


def test_poison_payload_in_a_chunk_is_parked_with_its_reason(store: Store) -> None:
    seed(store)
    good = put(store, [payload(objectid=1), payload("activity_completion_updated", objectid=2)])
    bad = payload("activity_completion_updated", objectid=3)
    bad["completionstate"] = 9  # stored before a schema change, say: no longer a valid payload
    [poison] = put(store, [bad])
    good += put(store, [payload("grade_updated", objectid=4)])
    out = process_pending(settings_for(store.url), store)
    assert out.processed == 3 and out.records == 3 and out.parked == 1
    [parked] = list_parked(store)
    assert parked["webhook_id"] == poison
    assert parked["reason"].startswith("invalid payload: completionstate:")
    assert {w: states(store)[w] for w in good} == dict.fromkeys(good, "processed")


def test_a_concurrent_twin_makes_the_chunk_redo_one_by_one_without_losing_a_delivery(store: Store) -> None:
    """Another writer (reconciliation, another processor) stores one of this chunk's records after the
    chunk checked which exist: the bulk insert fails on the unique source, the chunk is redone one delivery
    at a time, the twin counts as a duplicate and every delivery is processed."""
    seed(store)
    wids = put(store, [payload("activity_completion_updated", objectid=k, cmid=k, timecreated=1795385000 + k)
                       for k in range(1, 6)])
    real = processing._row_values
    raced: list[str] = []

    def twin_first(rec: Any) -> dict[str, Any]:
        values = real(rec)
        if not raced:
            raced.append(rec.source)
            other = open_store(store.url, migrate=False)
            try:
                with other.session() as s:
                    s.add(LearningRecordRow(**{**values, "origin": "reconcile"}))
            finally:
                other.dispose()
        return values

    processing._row_values = twin_first  # type: ignore[assignment]
    try:
        out = process_pending(settings_for(store.url), store)
    finally:
        processing._row_values = real  # type: ignore[assignment]
    assert raced
    assert out.as_json() == {"processed": 5, "records": 4, "duplicates": 1, "parked": 0, "rejected": 0, "withdrawn": 0}
    assert len(rows(store)) == 5 and list_parked(store) == []
    assert {w: states(store)[w] for w in wids} == dict.fromkeys(wids, "processed")


def test_postgres_refusing_one_delivery_does_not_block_the_chunk(pg_url: str) -> None:
    """A record the database refuses (here a CHECK constraint on the score; grades the score column cannot hold
    are refused by the payload now): PostgreSQL refuses the whole bulk insert; redone one by one, the others
    are stored and that one is parked with the database's reason."""
    store = open_store(pg_url)
    try:
        seed(store)
        with store.engine.begin() as c:
            c.execute(text("ALTER TABLE learning_record ADD CONSTRAINT score_below_500 CHECK (score < 500)"))
        huge = payload("grade_updated", objectid=2, cmid=2)
        huge["grade"] = 900
        wids = put(store, [payload("activity_completion_updated", objectid=1), huge,
                           payload("grade_updated", objectid=3)])
        out = process_pending(settings_for(store.url), store)
        assert out.as_json() == {"processed": 2, "records": 2, "duplicates": 0, "parked": 1, "rejected": 0,
                                 "withdrawn": 0}
        [parked] = list_parked(store)
        assert parked["webhook_id"] == wids[1]
        assert parked["reason"].startswith("processing failed: IntegrityError:")
        assert "score_below_500" in parked["reason"]
        assert ID_NUMBER not in parked["reason"]
        # Retried on the next run (still refused), the others untouched.
        out = process_pending(settings_for(store.url), store)
        assert out.as_json() == {"processed": 0, "records": 0, "duplicates": 0, "parked": 1, "rejected": 0,
                                 "withdrawn": 0}
        assert list_parked(store)[0]["attempts"] == 2 and len(rows(store)) == 2
    finally:
        store.dispose()


def test_filters_webhook_ids_and_include_parked(store: Store) -> None:
    seed(store)
    known = put(store, [payload(objectid=k, userid=16, cmid=k, timecreated=1795385000 + k,
                                event="activity_completion_updated") for k in range(1, 4)])
    [unknown] = put(store, [payload(userid=99, username="nobody")])
    out = process_pending(settings_for(store.url), store, webhook_ids=[known[1], unknown])
    assert out.as_json() == {"processed": 1, "records": 1, "duplicates": 0, "parked": 1, "rejected": 0, "withdrawn": 0}
    assert [states(store)[w] for w in known] == ["pending", "processed", "pending"]
    out = process_pending(settings_for(store.url), store, include_parked=False)
    assert out.as_json() == {"processed": 2, "records": 2, "duplicates": 0, "parked": 0, "rejected": 0, "withdrawn": 0}
    assert states(store)[unknown] == "parked"
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ParkedEvent)) == 1


def test_two_processors_on_postgres_take_each_delivery_exactly_once(pg_url: str) -> None:
    setup = open_store(pg_url)
    try:
        seed_many(setup, teachers=6, courses=3)
        n = 1200
        put(setup, [payload("activity_completion_updated", userid=100 + 2 * (k % 3), username="", courseid=50,
                            course_idnumber="C0", cmid=k + 1, objectid=k, timecreated=1795385000 + k)
                    for k in range(n)])
    finally:
        setup.dispose()
    stores = [open_store(pg_url, migrate=False) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[IntakeResult] = []
    errors: list[BaseException] = []

    def work(st: Store) -> None:
        try:
            start.wait()
            results.append(process_pending(settings_for(pg_url), st, chunk_size=50))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert len(results) == 2
        total = {k: v + results[1].as_json()[k] for k, v in results[0].as_json().items()}
        # A delivery taken twice would show as a duplicate (or a redo): neither happens.
        assert total == {"processed": n, "records": n, "duplicates": 0, "parked": 0, "rejected": 0, "withdrawn": 0}
        assert all(r.processed > 0 for r in results), results  # both really worked
        assert len(rows(stores[0])) == n
        assert set(states(stores[0]).values()) == {"processed"}
    finally:
        for st in stores:
            st.dispose()


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_small_chunks_cover_every_delivery(store: Store, chunk_size: int) -> None:
    seed(store)
    wids = put(store, [payload("activity_completion_updated", objectid=k, cmid=k, timecreated=1795385000 + k)
                       for k in range(1, 8)])
    out = process_pending(settings_for(store.url), store, chunk_size=chunk_size)
    assert out.processed == 7 and out.records == 7
    assert {states(store)[w] for w in wids} == {"processed"}
