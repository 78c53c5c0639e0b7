"""The six deliveries the real local_creditbridge 1.0.0 sent from a Moodle 4.5.6 site
(tests/fixtures/plugin-webhooks/deliveries.json), re-signed with a fresh timestamp and the test secret, sent with
their recorded bytes and headers to a real `creditbridge serve`: every one is stored and processed and none is
parked (the course-total grade included); the revocation withdraws the completion, the re-completion counts."""

from __future__ import annotations

import json
import shutil
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
from fixture_paths import fixture
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from webhook_helpers import ID_NUMBER, SECRET

from creditbridge.cli.main import cli
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.payload import webhook_id

FIXTURE = fixture("plugin-webhooks", "deliveries.json")
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


FAKE_MOODLE = Path(__file__).resolve().parent / "fake_moodle"
PLUGIN = Path(__file__).resolve().parents[2] / "local_creditbridge"
PHP = shutil.which("php")


@pytest.mark.skipif(PHP is None, reason="php-cli not installed (apt-get install -y php-cli; .ci/run does)")
def test_plugin_task_sends_the_recorded_events_to_a_real_receiver(receiver):
    """The plugin's own code (observer path, send task, retry policy) in a fake Moodle (fake_moodle/: the few
    Moodle calls it makes), raising the recorded events against a real `creditbridge serve`: the payloads are the
    golden ones, the course total is not sent, the sends need no database after the learner is deleted, a wrong
    secret and a blocked URL are configuration errors retried later, a 1.0.0 task for a deleted user ends."""
    url, _cfg, store = receiver
    r = subprocess.run([PHP, str(FAKE_MOODLE / "run_plugin.php"), str(PLUGIN), url + "/webhooks/moodle", SECRET],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["collected"] == {
        "01_course_completed": ["send", True], "02_activity_completed": ["send", True],
        "03_activity_revoked": ["send", True], "04_grade_manual_item": ["send", True],
        "05_grade_course_total": ["total", False], "06_activity_completed_again": ["send", True]}
    assert out["unmanaged"] == "unmanaged"
    assert out["missing"] == {"outcome": "missing", "payload": None, "reason": "user 4242 no longer exists"}
    assert out["queued_after_sending"] == 0  # all five delivered although the learner was deleted
    wrong = out["wrong_secret"]
    assert (wrong["queued"], wrong["attempt"], wrong["delay"]) == (1, 1, 60)
    assert wrong["lasterror"]["severity"] == "config"
    assert "secret" in wrong["lasterror"]["message"] and "HTTP 401 bad_signature" in wrong["lasterror"]["message"]
    assert out["retry_after_fix_queued"] == 0
    assert out["blocked_queued"] == 1
    log = "\n".join(out["mtrace"])
    assert "CONFIGURATION ERROR" in log and "The URL is blocked." in log and "curlsecurityblockedhosts" in log
    assert out["mtrace"][-1] == "local_creditbridge: event queued by plugin 1.0.0 not sent: user 5809 no longer exists"

    wait_until_processed(url)
    with store.session() as s:
        states = sorted((d.event, d.state) for d in s.scalars(select(WebhookDelivery)))
        rows = sorted((x.kind, x.activity or "", str(x.score), x.withdrawn_by is not None)
                      for x in s.scalars(select(LearningRecordRow)))
    assert states == sorted([("course_completed", "processed"), ("grade_updated", "processed")]
                            + [("activity_completion_updated", "processed")] * 3)
    assert rows == sorted([("course", "", "None", False), ("activity", "ETH02-A1", "None", True),
                           ("revocation", "ETH02-A1", "None", False), ("activity", "ETH02-A1", "None", False),
                           ("score", "ETH02-WS", "85.00", False)])
