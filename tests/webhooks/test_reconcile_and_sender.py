"""Reconciliation against a loopback Moodle WS endpoint answering as the recorded Moodle does, and the
sandbox sender delivering signed payloads over HTTP to the real receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import select
from webhook_helpers import SECRET, SITE, seed, settings_for, settle
from werkzeug.serving import make_server

from creditbridge.connector.moodle import MoodleClient
from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow, Teacher
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.processing import process_pending
from creditbridge.webhooks.reconcile import reconcile

COMPLETED = {"completionstatus": {"completed": True, "aggregation": 1, "completions": [
    {"type": 1, "title": "Self completion", "status": "Yes", "complete": True, "timecompleted": 1795385697,
     "details": {"type": "Self completion", "criteria": "Self completion",
                 "requirement": "Marking yourself complete", "status": ""}}]}, "warnings": []}
INCOMPLETE = {"completionstatus": {"completed": False, "aggregation": 1, "completions": []}, "warnings": []}


class Served:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


def fake_moodle(completed: set[tuple[int, int]], enrolled: dict[int, list[int]], calls: list[str]) -> Flask:
    app = Flask("moodle")

    @app.post("/webservice/rest/server.php")
    def ws() -> Any:
        f = request.form
        fn = f["wsfunction"]
        calls.append(fn)
        if fn == "core_webservice_get_site_info":
            return {"siteurl": SITE, "sitename": "t", "username": "admin", "userid": 2, "functions": []}
        if fn == "core_enrol_get_enrolled_users":
            opts = {f[k]: f[k.replace("[name]", "[value]")] for k in f if k.endswith("[name]")}
            start, n = int(opts.get("limitfrom", 0)), int(opts.get("limitnumber", 0)) or 10**6
            users = enrolled.get(int(f["courseid"]), [])[start:start + n]
            return json.dumps([{"id": u, "username": f"u{u}"} for u in users])
        if fn == "core_completion_get_course_completion_status":
            key = (int(f["courseid"]), int(f["userid"]))
            return COMPLETED if key in completed else INCOMPLETE
        return {"exception": "moodle_exception", "errorcode": "invalidrecord", "message": fn}
    return app


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    seed(s)
    with s.session() as ses:  # two more enrolled teachers: one completed, one not
        for uid, idn in ((17, "110105194912310038"), (18, "110105194912310046")):
            ses.add(Teacher(programme="sd-2022", id_number=idn, name="x", school_code="S1", school_name="S",
                            county="C", city="J", stage="primary", username=f"u{uid}", moodle_user_id=uid))
    yield s
    s.dispose()


def test_reconcile_finds_missed_completion_and_both_ways_is_one_record(store, db_url):
    from webhook_helpers import payload, signed
    calls: list[str] = []
    moodle = Served(fake_moodle({(7, 16), (7, 17)}, {7: [2, 16, 17, 18]}, calls))
    settings = settings_for(db_url)
    # The webhook for user 16 arrived; the one for user 17 was never sent.
    receiver = create_app({"SETTINGS": settings})
    body, headers = signed(payload(userid=16))
    assert receiver.test_client().post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    close_app(receiver)
    try:
        client = MoodleClient.from_url(moodle.url, "TOKEN")
        out = reconcile(settings, store, client)
        again = reconcile(settings, store, client)
    finally:
        moodle.stop()
    assert (out.created, out.already_known, out.checked) == (1, 1, 2)
    assert (again.created, again.checked) == (0, 1)  # user 18 still incomplete, asked again
    with store.session() as s:
        rows = {r.teacher: r for r in s.scalars(select(LearningRecordRow))}
    assert set(rows) == {"11010519491231002X", "110105194912310038"}
    assert rows["11010519491231002X"].origin == "webhook" and rows["110105194912310038"].origin == "reconcile"


class FakeSandboxState:
    """Just what webhook_sender needs from SandboxState: listeners and lookups of users/courses/modules."""

    def __init__(self) -> None:
        self.listeners: list = []

    def add_completion_listener(self, fn) -> None:
        self.listeners.append(fn)

    def get_user(self, uid: int) -> dict:
        return {"id": uid, "username": "tch200001", "idnumber": ""}

    def get_course(self, cid: int) -> dict:
        return {"id": cid, "idnumber": "PD-COMP201"}

    def get_course_module(self, cmid: int) -> dict:
        return {"cmid": cmid, "idnumber": "ACT-7", "modname": "page"}

    def complete(self, event: dict) -> None:
        for fn in self.listeners:
            fn(event)


@pytest.fixture
def receiver(store, db_url) -> Iterator[Served]:
    app = create_app({"SETTINGS": settings_for(db_url)})
    served = Served(app)
    yield served
    served.stop()
    close_app(app)


def test_sender_delivers_signed_events_that_become_records(store, receiver):
    from creditbridge.sandbox.webhook_sender import install
    state = FakeSandboxState()
    host = Flask("sandbox")
    host.config.update(SANDBOX_WEBHOOK_URL=receiver.url + "/webhooks/moodle", SANDBOX_WEBHOOK_SECRET=SECRET,
                       SANDBOX_WWWROOT=SITE)
    sender = install(host, state)
    state.complete({"eventname": "\\core\\event\\course_module_completion_updated", "userid": 16,
                    "relateduserid": 16, "courseid": 7, "contextinstanceid": 7, "objectid": 3,
                    "timecreated": 1795385697, "other": {"relateduserid": 16, "completionstate": 1}})
    state.complete({"eventname": "\\core\\event\\course_completed", "userid": 2, "relateduserid": 16,
                    "courseid": 7, "contextinstanceid": 7, "objectid": 1, "timecreated": 1795385698,
                    "other": {"relateduserid": "16"}})
    state.complete({"eventname": "\\core\\event\\course_completed", "userid": 2, "relateduserid": 16,
                    "courseid": 7, "contextinstanceid": 7, "objectid": 1, "timecreated": 1795385698,
                    "other": {"relateduserid": "16"}})  # a resend of the same event
    sender.flush()
    sender.stop()
    assert (sender.sent, sender.failed) == (3, 0)
    settle(receiver.app)
    with store.session() as s:
        rows = sorted((r.kind, r.teacher, r.activity) for r in s.scalars(select(LearningRecordRow)))
    # course_completed's learner is relateduserid (16), not userid (2, the cron user)
    assert rows == [("activity", "11010519491231002X", "ACT-7"), ("course", "11010519491231002X", None)]
    assert process_pending(settings_for(store.url), store).processed == 0


def test_sandbox_end_to_end(receiver, db_url):
    """A completion recorded in H2's sandbox (admin endpoint) arrives signed and becomes a learning record."""
    import time

    import requests

    from creditbridge.sandbox import app as sandbox_app
    from creditbridge.sandbox import server
    app = sandbox_app.create_app({"SANDBOX_TOKEN": "tok", "SANDBOX_DB": ":memory:",
                                  "SANDBOX_WEBHOOK_URL": receiver.url + "/webhooks/moodle",
                                  "SANDBOX_WEBHOOK_SECRET": SECRET})
    handle = server.serve_in_thread(app)
    try:
        client = MoodleClient.from_url(handle.url, "tok")
        [(_, user)] = client.create_users([{"username": "tch300001", "password": "Teach#2024a", "firstname": "A",
                                            "lastname": "B", "email": "tch300001@example.org"}]).succeeded
        [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "PD-COMP201", "categoryid": 1,
                                                "idnumber": "PD-COMP201", "enablecompletion": 1}]).succeeded
        client.enrol_users([{"roleid": 5, "userid": user["id"], "courseid": course["id"]}])
        store = open_store(db_url)
        with store.session() as s:
            t = s.scalars(select(Teacher).where(Teacher.moodle_user_id == 16)).one()
            t.moodle_user_id, t.username = user["id"], "tch300001"
        r = requests.post(handle.url + "/sandbox/admin/course_completion", timeout=10,
                          data={"wstoken": "tok", "token": "tok", "userid": user["id"], "courseid": course["id"]},
                          headers={"Authorization": "tok"})
        assert r.status_code < 300, r.text
        deadline = time.monotonic() + 10
        rows: list = []
        while time.monotonic() < deadline and not rows:
            with store.session() as s:
                rows = list(s.scalars(select(LearningRecordRow)))
            time.sleep(0.1)
        assert [(r.kind, r.teacher, r.course) for r in rows] == [("course", "11010519491231002X", "PD-COMP201")]
        store.dispose()
    finally:
        handle.stop()
