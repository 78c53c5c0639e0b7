"""The six deliveries the real local_creditbridge 1.0.0 sent from a Moodle 4.5.6 site
(tests/fixtures/plugin-webhooks/deliveries.json), re-signed with a fresh timestamp and the test secret, sent with
their recorded bytes and headers to a real `creditbridge serve`: every one is stored and processed and none is
parked (the course-total grade included); the revocation withdraws the completion, the re-completion counts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from webhook_helpers import ID_NUMBER, SECRET

from creditbridge.cli.main import cli
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.payload import webhook_id

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin-webhooks" / "deliveries.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
ENTRIES: list[dict[str, Any]] = RECORDED["entries"]
SITE = "http://127.0.0.1:8089"
# Headers the sender's HTTP client sets itself for the connection it makes.
CONNECTION_HEADERS = {"host", "content-length"}


def test_recording_is_what_the_plugin_and_receiver_agree_on():
    """The recorded signatures are Standard Webhooks signatures under the recorded secret, and each recorded
    webhook-id is webhook_id() of its own body: PHP and Python derive the same ids from real data."""
    assert len(ENTRIES) == 6
    for e in ENTRIES:
        h = e["headers"]
        when = datetime.fromtimestamp(int(h["webhook-timestamp"]), UTC)
        assert Webhook(RECORDED["secret"]).sign(h["webhook-id"], when, e["body"]) == h["webhook-signature"]
        p = json.loads(e["body"])
        assert webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"]) \
            == h["webhook-id"]


def resigned(entry: dict[str, Any]) -> dict[str, str]:
    """The recorded headers with a fresh timestamp and a signature by the test secret."""
    headers = {k: v for k, v in entry["headers"].items() if k.lower() not in CONNECTION_HEADERS}
    now = datetime.now(UTC)
    headers["webhook-timestamp"] = str(int(now.timestamp()))
    headers["webhook-signature"] = Webhook(SECRET).sign(headers["webhook-id"], now, entry["body"])
    return headers


def seed_site(store: Store) -> None:
    """The teacher and course of the recording, as sync leaves them in the store."""
    with store.session() as s:
        s.add(Teacher(programme="sd-2022", id_number=ID_NUMBER, name="Eli", school_code="S1", school_name="S",
                      county="C", city="J", stage="primary", username="tch100001", moodle_user_id=5809))
        s.add(CatalogCourse(programme="sd-2022", code="SD22-ETH-02", title="Ethics", kind="required",
                            hours=Decimal("3"), moodle_course_id=15))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver(tmp_path: Path, db_url: str) -> Iterator[tuple[str, str, Store]]:
    """A seeded store and `creditbridge serve` on it (one worker, default background processing)."""
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n', encoding="utf-8")
    store = open_store(db_url)
    seed_site(store)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "serve",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet
                pass
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.1)
        yield url, str(cfg), store
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        store.dispose()


def wait_until_processed(url: str) -> None:
    deadline = time.monotonic() + 30
    while requests.get(url + "/healthz", timeout=5).json()["pending"]:
        assert time.monotonic() < deadline, "deliveries still pending after 30 s"
        time.sleep(0.1)


def test_every_real_delivery_is_stored_and_processed_none_parked(receiver):
    url, cfg, store = receiver
    http = requests.Session()
    for e in ENTRIES:  # in the order the site sent them: the course completion before its activity's
        r = http.post(url + e["path"], data=e["body"].encode(), headers=resigned(e), timeout=10)
        assert r.status_code == 202, (e["title"], r.text)
    # Moodle's task retried after a lost answer: the same bytes again change nothing.
    again = http.post(url + ENTRIES[1]["path"], data=ENTRIES[1]["body"].encode(), headers=resigned(ENTRIES[1]),
                      timeout=10)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    wait_until_processed(url)

    with store.session() as s:
        states = {w: st for w, st in s.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.state))}
        rows = {r.source: (r.kind, r.activity, r.withdrawn_by, r.passed) for r in s.scalars(
            select(LearningRecordRow).order_by(LearningRecordRow.id))}
    assert states == {e["headers"]["webhook-id"]: "processed" for e in ENTRIES}

    completed = f"moodle:{SITE}:activity_completed:5809:58:1796545020"
    revoked = f"moodle:{SITE}:activity_revoked:5809:58:1796545024"
    again_completed = f"moodle:{SITE}:activity_completed:5809:58:1796545031"
    assert rows == {
        f"moodle:{SITE}:course_completed:5809:15": ("course", None, None, True),
        completed: ("activity", "ETH02-A1", revoked, True),  # withdrawn by the revocation
        revoked: ("revocation", "ETH02-A1", None, None),
        again_completed: ("activity", "ETH02-A1", None, True),  # the re-completion counts
    }

    # The two grades (the manual item's and the course total's, indistinguishable in plugin 1.0.0) are kept and
    # counted as not creditable; nothing is parked or rejected.
    status = CliRunner().invoke(cli, ["--config", cfg, "intake", "status", "--json"])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert (doc["received"], doc["duplicates"], doc["parked"], doc["pending"], doc["rejected"]) == (6, 1, 0, 0, 0)
    assert doc["not_creditable_by_reason"] == {"grade_without_item": 2}
    assert doc["records"] == 4
    parked = CliRunner().invoke(cli, ["--config", cfg, "intake", "parked"])
    assert parked.exit_code == 0 and parked.output.strip() == "no parked events"
