"""Signed deliveries the receiver used to accept (202) and then park forever or credit wrongly (attack report
items 3 and 7): ids beyond BIGINT or written as true, times beyond year 9999, grades the score column cannot
hold, grade items of no Moodle item type or a module's item without its activity. Each is refused at the door
with 422 `bad_payload` naming the field (or 400 for a number beyond a double / a NUL), and nothing is stored;
what was stored before the receiver checked this is poison for `intake replay --json`, never a record and never
a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from webhook_helpers import SECRET, SITE, payload, seed, settings_for, signed_bytes

from creditbridge.cli.main import cli
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.payload import webhook_id


@pytest.fixture
def client(db_url: str) -> Iterator[tuple[FlaskClient, Store]]:
    store = open_store(db_url)
    seed(store)
    app = create_app({"SETTINGS": settings_for(db_url)})
    app.config["WEBHOOKS_INLINE_MODE"] = "request"  # processed before the answer: the record is there at once
    try:
        yield app.test_client(), store
    finally:
        close_app(app)
        store.dispose()


def body(p: dict[str, Any]) -> bytes:
    return json.dumps(p, separators=(",", ":")).encode()


def grade(value: float = 7.5, *, item: dict[str, Any] | None = None, activity: bool = True) -> dict[str, Any]:
    p = payload("grade_updated", objectid=31, cmid=31)
    p["grade"], p["completionstate"] = value, None
    if not activity:
        p["activity"] = None
    if item is not None:
        p["gradeitem"] = {"id": 5, "itemtype": "manual", "itemmodule": None, "iteminstance": None, "idnumber": "",
                          **item}
    return p


def with_value(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    p = base or payload()
    *parents, key = path.split(".")
    target = p
    for k in parents:
        target = target[k]
    target[key] = value
    return p


REFUSED = [
    ("user_id_2_63", with_value("user.id", 2**63), "user.id"),
    ("course_id_2_64", with_value("course.id", 2**64), "course.id"),
    ("user_id_true", with_value("user.id", True), "user.id"),
    ("course_id_string", with_value("course.id", "7"), "course.id"),
    ("objectid_true", with_value("objectid", True), "objectid"),
    ("timecreated_10_15", with_value("timecreated", 10**15), "timecreated"),
    ("timecreated_true", with_value("timecreated", True), "timecreated"),
    ("timespent_huge", with_value("timespent", 10**12), "timespent"),
    ("grade_1e6", grade(1_000_000.0), "grade"),
    ("grade_minus_1e6", grade(-1_000_000.0), "grade"),
    ("grade_1e12", grade(1e12), "grade"),
    ("grademax_1e6", with_value("grademax", 1e6, grade()), "grademax"),
    ("itemtype_outcome", grade(item={"itemtype": "outcome"}, activity=False), "gradeitem.itemtype"),
    ("itemtype_upper_course", grade(item={"itemtype": "COURSE"}, activity=False), "gradeitem.itemtype"),
    ("itemtype_empty", grade(item={"itemtype": ""}, activity=False), "gradeitem.itemtype"),
    ("gradeitem_id_true", grade(item={"id": True}, activity=False), "gradeitem.id"),
    ("mod_item_without_activity", grade(item={"itemtype": "mod", "itemmodule": "assign", "iteminstance": 3},
                                        activity=False), "body"),
]


@pytest.mark.parametrize(("name", "p", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_signed_but_impossible_payload_is_refused(client: tuple[FlaskClient, Store], name: str,
                                                  p: dict[str, Any], field: str) -> None:
    c, store = client
    r = c.post("/webhooks/moodle", data=body(p), headers=signed_bytes(body(p), f"msg_bounds_{name}"))
    assert r.status_code == 422, r.json
    assert r.json["reason"] == "bad_payload" and r.json["detail"].startswith(f"{field}:"), r.json
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


@pytest.mark.parametrize(("name", "literal", "status", "reason"), [
    ("grade_10_400", "1" + "0" * 400, 400, "bad_number"),
    ("itemtype_nul", None, 400, "nul_character"),
])
def test_signed_body_with_impossible_literal(client: tuple[FlaskClient, Store], name: str, literal: str | None,
                                             status: int, reason: str) -> None:
    c, store = client
    if literal is not None:  # an integer literal a float cannot hold, as the tester wrote it
        raw = body(grade(1.5)).replace(b'"grade":1.5', b'"grade":' + literal.encode())
    else:
        raw = body(grade(item={"itemtype": "man\x00ual"}, activity=False))
    r = c.post("/webhooks/moodle", data=raw, headers=signed_bytes(raw, f"msg_bounds_{name}"))
    assert (r.status_code, r.json["reason"]) == (status, reason), r.json
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


@pytest.mark.parametrize(("item", "activity", "kind_key"), [
    ({"itemtype": "manual", "idnumber": "WS-1"}, False, "WS-1"),
    ({"itemtype": "mod", "itemmodule": "page", "iteminstance": 3}, True, "ACT-31"),
])
def test_creditable_items_at_the_bounds_still_make_records(client: tuple[FlaskClient, Store],
                                                           item: dict[str, Any], activity: bool,
                                                           kind_key: str) -> None:
    c, store = client
    p = grade(999_999.99, item=item, activity=activity)
    r = c.post("/webhooks/moodle", data=body(p), headers=signed_bytes(body(p), "msg_bounds_ok"))
    assert r.status_code == 202, r.json
    with store.session() as s:
        [rec] = s.scalars(select(LearningRecordRow)).all()
    assert (rec.kind, rec.activity, float(rec.score)) == ("score", kind_key, 999_999.99)


def test_course_total_is_still_not_creditable(client: tuple[FlaskClient, Store]) -> None:
    c, store = client
    p = grade(80, item={"itemtype": "course"}, activity=False)
    r = c.post("/webhooks/moodle", data=body(p), headers=signed_bytes(body(p), "msg_bounds_total"))
    assert r.status_code == 202, r.json
    with store.session() as s:
        assert s.scalars(select(LearningRecordRow)).all() == []
        assert s.scalar(select(WebhookDelivery.state)) == "processed"


def test_bodies_stored_before_the_checks_are_poison_for_replay(db_url: str, tmp_path: Path) -> None:
    """What an older receiver stored (an unknown item type, a grade of 2,000,000, an id of true): `intake replay
    --json` parks each with its reason, makes no record, prints no traceback and exits 0."""
    store = open_store(db_url)
    seed(store)
    stored = {"outcome": grade(item={"itemtype": "outcome"}, activity=False), "huge": grade(2e6),
              "true_id": grade(item={"id": True}, activity=False)}
    value = "CAST(:p AS json)" if store.is_postgres else ":p"
    with store.session() as s:
        for n, (name, p) in enumerate(stored.items()):
            p["objectid"] = 100 + n
            wid = webhook_id(SITE, p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"])
            stored[name] = wid
            s.execute(text("INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) "
                           f"VALUES (:w, 'grade_updated', {value}, 'pending', CURRENT_TIMESTAMP)"),
                      {"w": wid, "p": json.dumps(p)})
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "intake", "replay", "--json"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    out = json.loads(result.stdout)
    assert (out["records"], out["parked"]) == (0, 3), out
    reasons = {f["webhook_id"]: f["reason"] for f in out["failed"]}
    assert reasons[stored["outcome"]].startswith("invalid payload: gradeitem.itemtype:")
    assert reasons[stored["huge"]] == "invalid payload: grade: Input should be less than 1000000"
    assert reasons[stored["true_id"]] == "invalid payload: gradeitem.id: Input should be a valid integer"
    with store.session() as s:
        assert s.scalars(select(LearningRecordRow)).all() == []
    store.dispose()
