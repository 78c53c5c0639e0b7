"""The receiver over the Flask test client: accepted, duplicate, and every kind of bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from webhook_helpers import OLD_SECRET, SECRET, payload, seed, settings_for, settle, signed

from creditbridge.store import Store, open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks import resources
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all


@pytest.fixture
def client(db_url: str) -> Iterator[tuple[FlaskClient, Store]]:
    store = open_store(db_url)
    seed(store)
    app = create_app({"SETTINGS": settings_for(db_url, [SECRET, OLD_SECRET])})
    try:
        yield app.test_client(), store
    finally:
        close_app(app)
        store.dispose()


def deliveries(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(WebhookDelivery))


def records(store: Store) -> list[LearningRecordRow]:
    with store.session() as s:
        return list(s.scalars(select(LearningRecordRow)))


@pytest.mark.parametrize("mode", ["background", "request"])
def test_signed_delivery_becomes_record_and_duplicate_has_no_effect(client, mode):
    c, store = client
    c.application.config["WEBHOOKS_INLINE_MODE"] = mode
    body, headers = signed(payload())
    r = c.post("/webhooks/moodle", data=body, headers=headers)
    assert r.status_code == 202, r.json
    if mode == "request":  # processed before the answer went out
        assert len(records(store)) == 1
    again = c.post("/webhooks/moodle", data=body, headers=headers)
    assert again.status_code == 200 and again.json["duplicate"] is True
    settle(c.application)
    assert deliveries(store) == 1
    [rec] = records(store)
    assert (rec.teacher, rec.course, rec.kind, rec.passed, float(rec.hours)) == (
        "11010519491231002X", "PD-COMP201", "course", True, 6.0)
    assert rec.source == "moodle:http://127.0.0.1:8765:course_completed:16:7"
    assert read_all(store)["duplicate"] == 1
    health = c.get("/healthz")
    assert health.status_code == 200 and health.json["outcomes"] == {"accepted": 1, "duplicate": 1}


def test_rotated_old_secret_still_accepted(client):
    c, store = client
    body, headers = signed(payload(), secret=OLD_SECRET)
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    assert deliveries(store) == 1


def _tamper(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b'"objectid":1', b'"objectid":2'), headers


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("bad_signature", 401, "bad_signature"),
    ("wrong_secret", 401, "bad_signature"),
    ("old_timestamp", 401, "timestamp_too_old"),
    ("future_timestamp", 401, "timestamp_too_new"),
    ("missing_headers", 400, "missing_headers"),
    ("oversized", 413, "too_large"),
    ("malformed_json", 400, "bad_json"),
    ("schema_violation", 422, "bad_payload"),
    ("garbage_signature", 401, "bad_signature"),
    ("nul_in_webhook_id", 400, "bad_webhook_id"),
    ("long_webhook_id", 400, "bad_webhook_id"),
    ("not_utf8", 401, "bad_signature"),
])
def test_bad_input_gets_4xx_and_stores_nothing(client, case, status, reason):
    c, store = client
    p = payload()
    body, headers = signed(p)
    if case == "bad_signature":
        body, headers = _tamper(body, headers)
    elif case == "wrong_secret":
        body, headers = signed(p, secret="whsec_" + "QUJD" * 8)
    elif case == "old_timestamp":
        body, headers = signed(p, when=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "future_timestamp":
        body, headers = signed(p, when=datetime.now(UTC) + timedelta(minutes=6))
    elif case == "missing_headers":
        del headers["webhook-signature"]
    elif case == "oversized":
        p["user"]["idnumber"] = "x" * 70_000
        body, headers = signed(p)
    elif case == "malformed_json":
        body, headers = signed(p)
        from standardwebhooks.webhooks import Webhook
        body = b'{"event": "course_completed",'
        headers["webhook-signature"] = Webhook(SECRET).sign(headers["webhook-id"], datetime.now(UTC), body.decode())
    elif case == "schema_violation":
        p["event"] = "user_deleted"
        body, headers = signed(p)
    elif case == "garbage_signature":
        headers["webhook-signature"] = "v1"
    elif case in ("nul_in_webhook_id", "long_webhook_id"):
        # signed correctly, but not an id the inbox can keep whole (nor one worth logging)
        from standardwebhooks.webhooks import Webhook
        wid = "msg_\x00abc" if case == "nul_in_webhook_id" else "msg_" + "a" * 100
        headers["webhook-id"] = wid
        headers["webhook-signature"] = Webhook(SECRET).sign(wid, datetime.now(UTC), body.decode())
    elif case == "not_utf8":
        body = body.replace(b'"tch200001"', b'"tch\xff00001"')
    r = c.post("/webhooks/moodle", data=body, headers=headers)
    assert r.status_code == status, r.json
    assert r.json["reason"] == reason
    assert deliveries(store) == 0 and records(store) == []
    assert reason not in read_all(store)  # counted in memory: no database write per refused request
    assert resources.pending_counts(c.application).flush()
    assert read_all(store)[reason] == 1


def test_unknown_user_is_parked_then_processed_after_sync(client):
    from creditbridge.store.models.core import Teacher
    from creditbridge.webhooks.processing import list_parked, process_pending
    c, store = client
    body, headers = signed(payload(userid=99, username="tch999"))
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    settle(c.application)
    [parked] = list_parked(store)
    assert parked["reason"] == "unknown Moodle user 99 (tch999)"
    assert records(store) == []
    with store.session() as s:  # what the next roster sync does: the teacher gets a Moodle id
        t = s.scalars(select(Teacher)).one()
        t.moodle_user_id, t.username = 99, "tch999"
    out = process_pending(settings_for(store.url), store)
    assert out.processed == 1 and out.records == 1
    assert list_parked(store) == [] and len(records(store)) == 1


def test_revocation_withdraws_activity_record_and_is_kept(client):
    c, store = client
    for state, t in ((1, 1795385697), (0, 1795385800)):
        body, headers = signed(payload("activity_completion_updated", state=state, objectid=3, timecreated=t))
        assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    settle(c.application)
    rows = {r.kind: r for r in records(store)}
    assert set(rows) == {"activity", "revocation"}
    assert rows["activity"].withdrawn_by == rows["revocation"].source
    assert rows["activity"].activity == "ACT-7"


def test_json_body_is_not_parsed_before_signature(client):
    c, store = client
    r = c.post("/webhooks/moodle", data=json.dumps({"x": 1}), headers={"webhook-id": "a", "webhook-timestamp": "1",
                                                                       "webhook-signature": "v1,AAAA"})
    assert r.status_code == 401 and deliveries(store) == 0


def test_other_methods_and_paths_get_json_4xx(client):
    c, store = client
    r = c.get("/webhooks/moodle")
    assert r.status_code == 405 and r.headers["Allow"] == "POST" and r.json["reason"] == "method_not_allowed"
    body, headers = signed(payload())
    r = c.post("/webhooks/moodle/extra", data=body, headers=headers)
    assert r.status_code == 404 and r.json["reason"] == "not_found"
    assert c.get("/healthz").status_code == 200  # the rest of the app is still Flask's
    assert deliveries(store) == 0
