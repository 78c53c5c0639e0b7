"""The simulator's API as a registry client sees it: signatures, idempotency, validation, load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from registry_helpers import KEY_ID, SECRET, id_number, record

from creditbridge.connector.registry.signing import IDEMPOTENCY_HEADER, sign
from creditbridge.registry_sim.app import create_app

PATH = "/api/v1/credit-records:batch"


@pytest.fixture
def app(tmp_path: Path):
    a = create_app({"REGISTRY_SIM_DB": str(tmp_path / "sim.db"), "REGISTRY_SIM_KEYS": {KEY_ID: SECRET}})
    yield a
    a.extensions["registry_sim"].db.close()


def post(client, items, key="batch-key-0001", secret=SECRET, ts=None, key_id=KEY_ID):
    body = json.dumps({"records": items}).encode()
    ts = str(int(time.time()) if ts is None else ts)
    headers = {"X-Registry-Key-Id": key_id, "X-Registry-Timestamp": ts,
               "X-Registry-Signature": sign(secret, "POST", PATH, ts, body), IDEMPOTENCY_HEADER: key,
               "Content-Type": "application/json"}
    return client.post(PATH, data=body, headers=headers)


def item(n, key=None, **over):
    return {"key": key or f"record-key-{n:06d}", "action": "submit", "supersedes": None, "record": record(n, **over)}


def test_acknowledges_each_record_and_keeps_it(app) -> None:
    c = app.test_client()
    r = post(c, [item(1), item(2)])
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert [x["status"] for x in results] == ["acknowledged", "acknowledged"]
    assert all(x["registry_id"].startswith("CR") for x in results)
    listing = c.get("/api/v1/credit-records?programme=sd-2022").get_json()
    assert listing["counts"] == {"active": 2}
    # The listing masks ID numbers unless asked not to.
    assert listing["records"][0]["teacher"] != id_number(1)
    assert c.get("/api/v1/credit-records?masked=0").get_json()["records"][0]["teacher"] == id_number(1)


@pytest.mark.parametrize(("mutate", "code"), [
    ({"secret": "wrong"}, "bad_signature"),
    ({"ts": 1000}, "stale_timestamp"),
    ({"key_id": "nobody"}, "unknown_key"),
])
def test_bad_or_old_signatures_are_refused(app, mutate, code) -> None:
    r = post(app.test_client(), [item(1)], **mutate)
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == code
    assert app.extensions["registry_sim"].db.counts() == {}


def test_same_idempotency_key_returns_the_stored_answer(app) -> None:
    c = app.test_client()
    first = post(c, [item(1)], key="k-repeat-0001")
    again = post(c, [item(1)], key="k-repeat-0001")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    other_body = post(c, [item(2)], key="k-repeat-0001")
    assert other_body.status_code == 422
    assert app.extensions["registry_sim"].db.counts() == {"active": 1}


def test_same_record_key_in_a_new_batch_is_not_recorded_twice(app) -> None:
    c = app.test_client()
    post(c, [item(1)], key="batch-a-0001")
    r = post(c, [item(1), item(2)], key="batch-b-0001")
    assert [x["status"] for x in r.get_json()["results"]] == ["acknowledged", "acknowledged"]
    rows = app.extensions["registry_sim"].db.records()
    assert len(rows) == 2
    assert rows[0]["deliveries"] == 2


@pytest.mark.parametrize(("over", "reason"), [
    ({"id_number": "370102198001010011"}, "check digit"),
    ({"name": ""}, "name"),
    ({"hours": 5000}, "hours"),
    ({"credits": -1}, "credits"),
    ({"programme_code": "zz-1999"}, "unknown programme"),
    ({"result": "maybe"}, "result"),
    ({"start_date": "2022-12-31", "end_date": "2022-01-01"}, "start_date is after end_date"),
])
def test_rejects_bad_records_with_a_reason_and_keeps_good_ones(app, over, reason) -> None:
    r = post(app.test_client(), [item(1), item(2, **over)])
    results = r.get_json()["results"]
    assert results[0]["status"] == "acknowledged"
    assert results[1]["status"] == "rejected"
    assert reason in results[1]["reason"]
    assert "370102198001010011" not in results[1]["reason"]
    assert app.extensions["registry_sim"].db.counts() == {"active": 1}


def test_missing_required_field_is_named(app) -> None:
    bad = item(1)
    del bad["record"]["hours"]
    r = post(app.test_client(), [bad])
    assert r.get_json()["results"][0]["reason"].startswith("hours")


def test_correction_supersedes_and_void_voids(app) -> None:
    c = app.test_client()
    post(c, [item(1, key="rk-v1-000001")], key="b1-000001")
    post(c, [{**item(1, key="rk-v2-000001", version=2, credits=6), "supersedes": "rk-v1-000001"}], key="b2-000001")
    states = {r["record_key"]: r["state"] for r in app.extensions["registry_sim"].db.records()}
    assert states == {"rk-v1-000001": "superseded", "rk-v2-000001": "active"}
    r = post(c, [{**item(1, key="rk-v3-000001", version=3), "action": "void", "supersedes": "rk-v2-000001"}],
             key="b3-000001")
    assert r.get_json()["results"][0]["status"] == "acknowledged"
    states = {r["record_key"]: r["state"] for r in app.extensions["registry_sim"].db.records()}
    assert states["rk-v2-000001"] == "voided"
    assert states["rk-v3-000001"] == "void"


def test_same_version_under_another_key_is_rejected(app) -> None:
    c = app.test_client()
    post(c, [item(1, key="rk-one-000001")], key="b1-000002")
    r = post(c, [item(1, key="rk-two-000001")], key="b2-000002")
    assert "already recorded" in r.get_json()["results"][0]["reason"]


def test_503_with_retry_after_under_injected_failure(tmp_path: Path) -> None:
    a = create_app({"REGISTRY_SIM_DB": ":memory:", "REGISTRY_SIM_KEYS": {KEY_ID: SECRET},
                    "REGISTRY_SIM_FAIL_RATE": 1.0, "REGISTRY_SIM_FAIL_MODES": ("503",), "REGISTRY_SIM_RETRY_AFTER": 7})
    r = post(a.test_client(), [item(1)])
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert a.extensions["registry_sim"].db.counts() == {}


def test_429_when_too_many_batches_in_flight(tmp_path: Path) -> None:
    a = create_app({"REGISTRY_SIM_DB": ":memory:", "REGISTRY_SIM_KEYS": {KEY_ID: SECRET},
                    "REGISTRY_SIM_MAX_INFLIGHT": 1})
    sem = a.extensions["registry_sim"].inflight
    sem.acquire()  # one batch being processed
    try:
        r = post(a.test_client(), [item(1)])
    finally:
        sem.release()
    assert r.status_code == 429
    assert "Retry-After" in r.headers


def test_cli_serves_the_api(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "registry-sim", "--port", str(port),
                             "--db", str(tmp_path / "cli.db"), "--secret", SECRET], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        assert health.json()["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
