"""The plugin's golden pairs (local_creditbridge/tests/fixtures/golden: Moodle event data => payload), checked on the
Python side: they are anchored to the deliveries the real plugin sent, every payload they expect passes the
receiver's schema, and the receiver turns each into the right record. The PHP builder is checked against the same
files by local_creditbridge/tests/payload_test.php, so the plugin and the receiver cannot drift apart."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fixture_paths import fixture
from flask.testing import FlaskClient
from sqlalchemy import select
from webhook_helpers import ID_NUMBER, SECRET, settings_for, signed

from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.counters import read_all
from creditbridge.webhooks.payload import WebhookPayload
from creditbridge.webhooks.processing import process_pending, process_pending_one_by_one
from creditbridge.webhooks.sender import build_payload

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "local_creditbridge"
GOLDEN = sorted((PLUGIN / "tests" / "fixtures" / "golden").glob("*.json"))
PAIRS: dict[str, dict[str, Any]] = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in GOLDEN}
RECORDING = json.loads(fixture("plugin-webhooks", "deliveries.json").read_text("utf-8"))
SECOND_ID_NUMBER = "110105195001010012"  # the cron-completion pair's teacher


def test_there_are_golden_pairs_for_every_recorded_delivery():
    assert len(PAIRS) >= 8
    assert sorted(p["recorded"]["delivery"] for p in PAIRS.values() if "recorded" in p) == list(range(6))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pair_is_anchored_to_the_recording_and_valid(name):
    pair = PAIRS[name]
    expected = pair["expected"]
    if "recorded" in pair:
        rec = pair["recorded"]
        entry = RECORDING["entries"][rec["delivery"]]
        assert rec["body"] == entry["body"] and rec["webhook_id"] == entry["headers"]["webhook-id"]
        sent = json.loads(rec["body"])
        relation = rec["plugin_1_0_0"]
        if relation == "identical":
            assert expected == sent
        elif relation == "gradeitem_added":
            assert {k: v for k, v in expected.items() if k != "gradeitem"} == sent
            assert expected["gradeitem"]["itemtype"] not in ("course", "category")
        else:
            assert relation == "not_sent" and expected is None
            assert pair["records"]["gradeitem"]["itemtype"] == "course"
    if expected is not None:
        WebhookPayload.model_validate(expected)
        # The event's own ids are the payload's: what the receiver derives the webhook id and sources from.
        assert (expected["objectid"], expected["timecreated"]) == (pair["event"]["objectid"],
                                                                   pair["event"]["timecreated"])


@pytest.mark.parametrize("name", sorted(n for n, p in PAIRS.items() if p["expected"] is not None))
def test_python_sender_builds_the_same_payload(name):
    """creditbridge.webhooks.sender (the sandbox's and the tests' plugin) makes what the PHP builder makes."""
    pair = PAIRS[name]
    event, records = pair["event"], pair["records"]
    cm, item = records["cm"], records["gradeitem"]
    built = build_payload(event, site=pair["site"], user=records["user"], course=records["course"],
                          activity=None if cm is None else {"cmid": cm["id"], **cm},
                          grade=None if item is None else float(event["other"]["finalgrade"]),
                          grademax=None if item is None else item["grademax"], gradeitem=item)
    assert built == WebhookPayload.model_validate(pair["expected"])


@pytest.fixture
def client(db_url: str) -> Iterator[tuple[FlaskClient, Store]]:
    yield from _client(db_url)


@pytest.fixture
def sqlite_client(sqlite_url: str) -> Iterator[tuple[FlaskClient, Store]]:
    """For what the schema decides before anything reaches the database."""
    yield from _client(sqlite_url)


def _client(db_url: str) -> Iterator[tuple[FlaskClient, Store]]:
    store = open_store(db_url)
    with store.session() as s:
        s.add(Teacher(programme="sd-2022", id_number=ID_NUMBER, name="Eli", school_code="S1", school_name="S",
                      county="C", city="J", stage="primary", username="tch100001", moodle_user_id=5809))
        s.add(Teacher(programme="sd-2022", id_number=SECOND_ID_NUMBER, name="Fan", school_code="S1",
                      school_name="S", county="C", city="J", stage="primary", username="tch100002",
                      moodle_user_id=5810))
        s.add(CatalogCourse(programme="sd-2022", code="SD22-ETH-02", title="Ethics", kind="required",
                            hours=Decimal("3"), moodle_course_id=15))
        s.add(CatalogCourse(programme="sd-2022", code="SD22-LAW-01", title="Law", kind="required",
                            hours=Decimal("2"), moodle_course_id=16))
    app = create_app({"SETTINGS": settings_for(store.url), "WEBHOOKS_INLINE_MODE": "request"})
    try:
        yield app.test_client(), store
    finally:
        close_app(app)
        store.dispose()


def test_every_expected_payload_becomes_its_record(client):
    """All golden payloads in order through the receiver: each is stored and processed, none parked."""
    c, store = client
    sent = [p["expected"] for _, p in sorted(PAIRS.items()) if p["expected"] is not None]
    for p in sent:
        body, headers = signed(p, secret=SECRET)
        r = c.post("/webhooks/moodle", data=body, headers=headers)
        assert r.status_code == 202, r.json
    with store.session() as s:
        states = set(s.scalars(select(WebhookDelivery.state)))
        rows = sorted((r.teacher == ID_NUMBER, r.course, r.activity or "", r.kind, r.score, r.withdrawn_by is not None)
                      for r in s.scalars(select(LearningRecordRow)))
    assert states == {"processed"}
    assert rows == sorted([
        (True, "SD22-ETH-02", "", "course", None, False),
        (True, "SD22-ETH-02", "ETH02-A1", "activity", None, True),  # withdrawn by the revocation
        (True, "SD22-ETH-02", "ETH02-A1", "revocation", None, False),
        (True, "SD22-ETH-02", "ETH02-A1", "activity", None, False),  # completed again: it counts
        # the workshop host's score on the manual item, under the item's ID number
        (True, "SD22-ETH-02", "ETH02-WS", "score", Decimal("85"), False),
        (True, "SD22-ETH-02", "ETH02-T1", "score", Decimal("17.5"), False),
        (False, "SD22-LAW-01", "", "course", None, False),
    ])
    assert not any(k.startswith("not_creditable") for k in read_all(store))


def _grade(itemtype: str, itemid: int, idnumber: str = "") -> dict[str, Any]:
    p = dict(PAIRS["04_grade_manual_item"]["expected"])
    p["objectid"] = itemid * 10
    p["gradeitem"] = {"id": itemid, "itemtype": itemtype, "itemmodule": None, "iteminstance": None,
                      "idnumber": idnumber}
    return p


@pytest.mark.parametrize("itemtype", ["course", "category"])
def test_a_total_named_as_such_is_not_creditable_never_parked(client, itemtype):
    """The plugin no longer sends totals, but a receiver given one (another sender, an old queue) keeps it
    processed and counted, and makes no score of it."""
    c, store = client
    body, headers = signed(_grade(itemtype, 40))
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    with store.session() as s:
        assert list(s.scalars(select(WebhookDelivery.state))) == ["processed"]
        assert list(s.scalars(select(LearningRecordRow))) == []
    assert read_all(store)["not_creditable_course_total"] == 1


@pytest.mark.parametrize("one_by_one", [False, True])
def test_a_grade_of_an_unknown_user_and_course_that_could_never_count_is_not_parked(client, one_by_one):
    """Plugin 1.0.0 sent every course's grades: one that names no item is not creditable wherever it comes from,
    so it is not parked waiting for a user or course that may never be synced (chunk and one-by-one paths)."""
    c, store = client
    c.application.config["WEBHOOKS_PROCESS_INLINE"] = False
    p = json.loads(PAIRS["05_grade_course_total"]["recorded"]["body"])
    p["user"] = {"id": 777, "username": "stranger", "idnumber": ""}
    p["course"] = {"id": 888, "idnumber": "MATH-7"}
    body, headers = signed(p)
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    out = (process_pending_one_by_one if one_by_one else process_pending)(settings_for(store.url), store)
    assert (out.processed, out.parked, out.records) == (1, 0, 0)
    assert read_all(store)["not_creditable_grade_without_item"] == 1


def test_a_manual_item_without_id_number_is_named_by_its_id(client):
    c, store = client
    body, headers = signed(_grade("manual", 77))
    assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    with store.session() as s:
        [row] = s.scalars(select(LearningRecordRow))
    assert (row.activity, row.kind, row.score) == ("gi77", "score", Decimal("85"))
    assert row.source.endswith(":grade_updated:5809:gi77:1796545026:770")


@pytest.mark.parametrize("gradeitem", [
    {"id": 0, "itemtype": "manual"},
    {"id": 1, "itemtype": "manual", "colour": "red"},
    {"id": 1},
    {"id": 1, "itemtype": "x" * 31},
    "manual",
])
def test_a_broken_gradeitem_is_refused_with_its_field(sqlite_client, gradeitem):
    c, store = sqlite_client
    p = dict(PAIRS["04_grade_manual_item"]["expected"])
    p["gradeitem"] = gradeitem
    body, headers = signed(p)
    r = c.post("/webhooks/moodle", data=body, headers=headers)
    assert r.status_code == 422 and r.json["reason"] == "bad_payload"
    assert r.json["detail"].startswith("gradeitem")
    with store.session() as s:
        assert list(s.scalars(select(WebhookDelivery))) == []


PHPUNIT = shutil.which("phpunit")


@pytest.mark.skipif(PHPUNIT is None, reason="phpunit not installed (apt-get install -y phpunit; .ci/run does)")
def test_php_builder_passes_the_same_golden_pairs():
    r = subprocess.run([PHPUNIT, "-c", str(PLUGIN / "tests" / "phpunit_standalone.xml")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK (" in r.stdout
