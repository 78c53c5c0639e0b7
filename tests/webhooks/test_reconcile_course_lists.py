"""Reconciliation settles a teacher's unreported enrolments with one course list (core_enrol_get_users_courses)
and asks the completion status only of the completions that list reports; a site that does not answer course
lists is asked enrolment by enrolment, with the same records as the outcome. Against a loopback Moodle WS."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import select
from webhook_helpers import ID_NUMBER, SITE, seed, settings_for
from werkzeug.serving import make_server

from creditbridge.connector.moodle import MoodleClient
from creditbridge.store import open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.webhooks.reconcile import ReconcileResult, _without_userinfo, reconcile

WHEN = 1795385697
OTHER = "110105194912310038"
# course -> enrolled Moodle users; (course, user) pairs complete in Moodle. No webhook ever arrived.
ENROLLED = {7: [2, 16, 17], 8: [16, 17], 9: [16]}
COMPLETED = {(7, 16), (9, 16), (8, 17)}


def fake_moodle(calls: list[str], *, lists: bool) -> Flask:
    app = Flask("moodle")

    @app.post("/webservice/rest/server.php")
    def ws() -> Any:
        f = request.form
        fn = f["wsfunction"]
        calls.append(fn)
        if fn == "core_webservice_get_site_info":
            return {"siteurl": SITE, "sitename": "t", "username": "admin", "userid": 2, "functions": []}
        if fn == "core_enrol_get_enrolled_users":
            return json.dumps([{"id": u} for u in ENROLLED.get(int(f["courseid"]), [])])
        if fn == "core_enrol_get_users_courses" and lists:
            uid = int(f["userid"])
            return json.dumps([{"id": c, "shortname": f"c{c}", "fullname": f"C{c}", "idnumber": "", "visible": 1,
                                "completed": (c, uid) in COMPLETED} for c, users in ENROLLED.items() if uid in users])
        if fn == "core_completion_get_course_completion_status":
            done = (int(f["courseid"]), int(f["userid"])) in COMPLETED
            return {"completionstatus": {"completed": done, "aggregation": 1, "completions": [
                {"type": 1, "title": "Self completion", "status": "Yes" if done else "No", "complete": done,
                 "timecompleted": WHEN if done else None,
                 "details": {"type": "Self completion", "criteria": "Self completion",
                             "requirement": "Marking yourself complete", "status": ""}}]}, "warnings": []}
        return {"exception": "webservice_access_exception", "errorcode": "accessexception",
                "message": f"Access control exception ({fn} is not in the service)"}
    return app


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    seed(s)  # teacher 16, course 7 (PD-COMP201, 6 hours)
    with s.session() as ses:
        ses.add(Teacher(programme="sd-2022", id_number=OTHER, name="x", school_code="S1", school_name="S",
                        county="C", city="J", stage="primary", username="u17", moodle_user_id=17))
        for cid, code in ((8, "PD-EL-8"), (9, "PD-EL-9")):
            ses.add(CatalogCourse(programme="sd-2022", code=code, title=code, kind="elective", hours=Decimal("2"),
                                  moodle_course_id=cid))
    yield s
    s.dispose()


def run(store: Any, db_url: str, *, lists: bool) -> tuple[ReconcileResult, list[str]]:
    calls: list[str] = []
    server = make_server("127.0.0.1", 0, fake_moodle(calls, lists=lists), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with MoodleClient.from_url(f"http://127.0.0.1:{server.server_port}", "TOKEN") as client:
            out = reconcile(settings_for(db_url), store, client)
    finally:
        server.shutdown()
    return out, calls


def recorded(store: Any) -> set[tuple[str, str, int]]:
    with store.session() as s:
        return {(r.teacher, r.course, int(r.occurred_at.timestamp())) for r in s.scalars(select(LearningRecordRow))}


EXPECTED = {(ID_NUMBER, "PD-COMP201", WHEN), (ID_NUMBER, "PD-EL-9", WHEN), (OTHER, "PD-EL-8", WHEN)}


def test_course_lists_settle_the_incomplete_enrolments_in_one_call_per_teacher(store, db_url):
    out, calls = run(store, db_url, lists=True)
    assert recorded(store) == EXPECTED
    assert (out.checked, out.created, out.already_known) == (5, 3, 0)
    assert calls.count("core_enrol_get_users_courses") == 2
    # Only the three completions are asked for their time; the two incomplete enrolments cost nothing more.
    assert calls.count("core_completion_get_course_completion_status") == 3
    assert out.calls == len(calls)
    # `intake reconcile --json` and the scheduler's ledger: these keys, in this order (this site has no activity
    # functions, so the activities say why they were not read).
    assert list(out.as_json().items()) == [
        ("courses", 3), ("checked", 5), ("already_known", 0), ("created", 3), ("skipped", 0), ("calls", len(calls)),
        ("activities", {"courses": 0, "checked": 0, "already_known": 0, "created": 0, "withdrawn": 0, "skipped": 0,
                        "unavailable": "core_course_get_contents: Access control exception "
                                       "(core_course_get_contents is not in the service) [accessexception]"})]

    again, calls = run(store, db_url, lists=True)
    assert (again.created, again.already_known, again.checked) == (0, 3, 2)
    # One open enrolment left per teacher: asked directly, a course list would cost as much.
    assert calls.count("core_enrol_get_users_courses") == 0
    assert calls.count("core_completion_get_course_completion_status") == 2


def test_a_site_without_course_lists_is_asked_enrolment_by_enrolment(store, db_url):
    out, calls = run(store, db_url, lists=False)
    assert recorded(store) == EXPECTED
    assert (out.checked, out.created) == (5, 3)
    assert calls.count("core_enrol_get_users_courses") == 1  # refused once, not asked again
    assert calls.count("core_completion_get_course_completion_status") == 5


def test_a_service_without_activity_functions_still_reconciles_courses_and_says_why(store, db_url):
    out, calls = run(store, db_url, lists=True)
    assert recorded(store) == EXPECTED
    # core_course_get_contents is not in this service: asked once, the activity pass stops, naming it
    assert calls.count("core_course_get_contents") == 1
    assert out.activities.unavailable is not None and "core_course_get_contents" in out.activities.unavailable
    assert out.activities.created == 0 and out.calls == len(calls)


def test_a_site_key_from_the_configured_url_never_holds_its_password() -> None:
    # Used when the site's answer names no siteurl: the key goes into every reconciled record's source.
    assert _without_userinfo("https://vendor:s3cret@moodle.example.cn/lms") == "https://moodle.example.cn/lms"
    assert _without_userinfo("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
