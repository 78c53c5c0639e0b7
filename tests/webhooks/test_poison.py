"""Poison deliveries (issue #14, item 9): a delivery that can never become a record is tried
`webhooks.max_attempts` times in all, then `rejected` with its reason and left alone; `intake replay` says so in
one line per delivery, never with a traceback or an ID number in full. A delivery waiting for a user who is not
synced yet is not poison and stays parked however often it is tried."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
from click.testing import CliRunner
from sqlalchemy import text
from webhook_helpers import ID_NUMBER, Receiver, payload, seed, signed, start_receiver

from creditbridge.cli.main import cli as main
from creditbridge.records.id_number import mask_id_number
from creditbridge.store import Store, open_store
from creditbridge.webhooks.payload import webhook_id
from creditbridge.webhooks.processing import list_parked

# A province whose Moodle usernames are the teachers' ID numbers: the username of a user not synced yet.
UNSYNCED_USERNAME = "37010219800101001X"


def replay(receiver: Receiver, *flags: str) -> subprocess.CompletedProcess[str]:
    """`creditbridge intake replay` as an operator runs it: its own process, stdout and stderr as they are."""
    done = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(receiver.config),
                           "intake", "replay", *flags], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def cli(receiver: Receiver, *args: str) -> str:
    r = CliRunner().invoke(main, ["--config", str(receiver.config), *args])
    assert r.exit_code == 0, r.output
    return r.output


def parked(receiver: Receiver, *flags: str) -> dict[str, dict]:
    return {r["webhook_id"]: r for r in json.loads(cli(receiver, "intake", "parked", "--json", *flags))}


def store_as_the_old_receiver_did(store: Store, raw: str, objectid: int) -> str:
    """An inbox row with this exact body, as receivers before this fix stored bodies they now refuse."""
    wid = webhook_id("http://127.0.0.1:8765", "\\core\\event\\user_graded", objectid, 1795385698, 16)
    value = "CAST(:p AS json)" if store.is_postgres else ":p"
    with store.session() as s:
        s.execute(text("INSERT INTO webhook_delivery (webhook_id, event, payload, state, received_at) "
                       f"VALUES (:w, 'grade_updated', {value}, 'pending', CURRENT_TIMESTAMP)"), {"w": wid, "p": raw})
    return wid


def test_poison_deliveries_are_rejected_after_max_attempts(tmp_path: Path, db_url: str) -> None:
    store = open_store(db_url)
    seed(store)
    receiver = start_receiver(tmp_path, db_url, "max_attempts = 3\naccess_log = false\n")
    no_activity = payload("activity_completion_updated", objectid=40)
    no_activity["activity"] = None  # signed and schema-valid, but an activity event needs its activity
    waiting = payload(userid=99, username=UNSYNCED_USERNAME, objectid=41)
    sends = {"no_activity": no_activity, "waiting": waiting}
    ids = {}
    try:
        for name, p in sends.items():
            body, headers = signed(p)
            r = requests.post(receiver.url + "/webhooks/moodle", data=body, headers=headers, timeout=30)
            assert r.status_code == 202, r.text
            ids[name] = headers["webhook-id"]
        deadline = time.monotonic() + 30  # the workers' background processing parks them: the first attempt
        while len(found := list_parked(store)) < len(sends) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted((r["webhook_id"], r["attempts"]) for r in found) == sorted((w, 1) for w in ids.values())
    finally:
        receiver.stop()
    ids["nul"] = store_as_the_old_receiver_did(
        store, json.dumps(payload(objectid=43)).replace("tch200001", "tch\\u0000200001"), 43)
    grade = payload("grade_updated", objectid=44, cmid=44)
    grade["grade"] = 1.5
    ids["1e400"] = store_as_the_old_receiver_did(store, json.dumps(grade).replace("1.5", "1e400"), 44)
    # A grade the score column (Numeric(8, 2)) cannot hold: the receiver refuses it now, older ones are poison.
    ids["huge_grade"] = store_as_the_old_receiver_did(store, json.dumps(grade).replace("1.5", "1e12"), 42)
    store.dispose()
    poison = {k: w for k, w in ids.items() if k != "waiting"}

    outputs = []
    for _ in range(4):
        done = replay(receiver)
        outputs.append(done.stdout + done.stderr)
    for out in outputs:
        assert "Traceback" not in out, out
        assert UNSYNCED_USERNAME not in out and ID_NUMBER not in out, out
    # Each failed delivery had its own line, with its reason.
    assert f"{ids['no_activity']}  rejected after 3 attempts: activity_completion_updated without an activity" \
        in outputs[1]
    assert f"{ids['waiting']}  parked, attempt 2: unknown Moodle user 99 ({mask_id_number(UNSYNCED_USERNAME)})" \
        in outputs[0]
    assert f"{ids['1e400']}  rejected after 3 attempts: invalid payload: grade: Input should be a finite number" \
        in outputs[2]
    assert f"{ids['nul']}  rejected after 3 attempts: invalid payload: user.username: a NUL character" in outputs[2]
    # The fourth run no longer touches the rejected ones: only the waiting delivery is tried (and stays parked).
    assert outputs[3].count("rejected after") == 0 and f"{ids['waiting']}  parked, attempt 5" in outputs[3]

    rejected = parked(receiver, "--rejected")
    assert set(rejected) == set(poison.values())
    assert {r["state"] for r in rejected.values()} == {"rejected"} and {r["attempts"] for r in rejected.values()} == {3}
    assert rejected[ids["huge_grade"]]["reason"] == "invalid payload: grade: Input should be less than 1000000"
    everything = parked(receiver)
    assert everything[ids["waiting"]]["state"] == "parked" and everything[ids["waiting"]]["attempts"] == 5
    assert everything[ids["waiting"]]["user"] == mask_id_number(UNSYNCED_USERNAME)
    listing = cli(receiver, "intake", "parked")
    assert listing.count(" rejected ") == len(poison) and UNSYNCED_USERNAME not in listing
    status = json.loads(cli(receiver, "intake", "status", "--json"))
    assert (status["parked"], status["rejected_deliveries"], status["pending"]) == (1, len(poison), 0)

    # After a fix, an operator can try the rejected ones again on purpose.
    again = json.loads(replay(receiver, "--include-rejected", "--json").stdout)
    assert again["rejected"] == len(poison) and again["parked"] == 1
    assert {f["webhook_id"] for f in again["failed"] if f["state"] == "rejected"} == set(poison.values())
