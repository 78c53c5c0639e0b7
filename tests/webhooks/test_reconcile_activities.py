"""Issue 13: an activity completion whose webhook the receiver refused (the plugin drops an event answered
with a 4xx) is recovered by `creditbridge intake reconcile` against the sandbox, counted once although the
webhook's time and Moodle's timecompleted differ by a second; a revocation that never arrived withdraws it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, request
from sqlalchemy import select
from webhook_helpers import ID_NUMBER, SITE, payload, seed, settings_for, settle, signed

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.cli.main import cli
from creditbridge.connector.moodle import MoodleClient
from creditbridge.store import open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow
from creditbridge.webhooks.app import close_app, create_app


def _reconcile(runner: CliRunner, sandbox: Any, db_url: str) -> dict[str, Any]:
    env = {"CREDITBRIDGE_MOODLE_URL": sandbox.url, "CREDITBRIDGE_MOODLE_TOKEN": sandbox.token,
           "CREDITBRIDGE_DATABASE_URL": db_url}
    result = runner.invoke(cli, ["intake", "reconcile", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _activity_rows(db_url: str) -> list[tuple[str, str | None, str, bool]]:
    store = open_store(db_url)
    try:
        with store.session() as s:
            return sorted((r.kind, r.activity, r.origin, r.withdrawn_by is not None)
                          for r in s.scalars(select(LearningRecordRow).where(LearningRecordRow.kind != "course")))
    finally:
        store.dispose()


def test_refused_activity_webhook_is_recovered_once_and_a_missed_revocation_withdraws(
        sandbox_server: Any, db_url: str, runner: CliRunner) -> None:
    sandbox = sandbox_server
    client = MoodleClient.from_url(sandbox.url, sandbox.token)
    site = client.get_site_info()["siteurl"]
    [(_, user)] = client.create_users([{"username": "tch200001", "password": "Teach#2024a", "firstname": "A",
                                        "lastname": "B", "email": "tch200001@example.org"}]).succeeded
    [(_, course)] = client.create_courses([{"fullname": "Assessment", "shortname": "PD-COMP201", "categoryid": 1,
                                            "idnumber": "PD-COMP201", "enablecompletion": 1}]).succeeded
    client.enrol_users([{"roleid": 5, "userid": user["id"], "courseid": course["id"]}])
    uid = user["id"]
    st = sandbox.state
    d1 = st.add_course_module(course["id"], "forum", "Discussion 1", "HF-D1")
    d2 = st.add_course_module(course["id"], "forum", "Discussion 2", "HF-D2")
    d3 = st.add_course_module(course["id"], "forum", "Discussion 3")  # no idnumber: named cm<id>
    st.add_course_module(course["id"], "page", "Reading", completion=0)  # not tracked: never asked about

    store = open_store(db_url)
    seed(store, userid=uid)
    with store.session() as s:
        s.scalars(select(CatalogCourse)).one().moodle_course_id = course["id"]
    store.dispose()

    receiver = create_app({"SETTINGS": settings_for(db_url)})
    try:
        http = receiver.test_client()
        for cmid, idnumber, secret, status in ((d1, "HF-D1", None, 202),
                                               (d2, "HF-D2", "whsec_d3JvbmctYnV0LXdlbGwtZm9ybWVkLXNlY3JldA==", 401)):
            done = st.set_activity_completion(cmid, uid, 1)
            # The plugin's event time: a second after Moodle's timecompleted, as the real site showed.
            p = payload("activity_completion_updated", userid=uid, courseid=course["id"], cmid=cmid,
                        objectid=done["id"], timecreated=done["timemodified"] + 1)
            p["site"], p["activity"]["idnumber"] = site, idnumber
            body, headers = signed(p, *([secret] if secret else []))
            assert http.post("/webhooks/moodle", data=body, headers=headers).status_code == status
        settle(receiver)
    finally:
        close_app(receiver)
    assert _activity_rows(db_url) == [("activity", "HF-D1", "webhook", False)]

    out = _reconcile(runner, sandbox, db_url)
    acts = out["activities"]
    assert (acts["created"], acts["already_known"], acts["withdrawn"]) == (1, 1, 0)
    assert _activity_rows(db_url) == [("activity", "HF-D1", "webhook", False),
                                      ("activity", "HF-D2", "reconcile", False)]

    again = _reconcile(runner, sandbox, db_url)["activities"]
    assert (again["created"], again["already_known"], again["withdrawn"]) == (0, 2, 0)

    # Revoked in Moodle, and the revocation's webhook never came: the stored completion is withdrawn, once.
    st.set_activity_completion(d1, uid, 0)
    st.set_activity_completion(d3, uid, 1)
    revoked = _reconcile(runner, sandbox, db_url)["activities"]
    assert (revoked["created"], revoked["withdrawn"]) == (1, 1)
    assert _activity_rows(db_url) == [("activity", "HF-D1", "webhook", True), ("activity", "HF-D2", "reconcile", False),
                                      ("activity", f"cm{d3}", "reconcile", False),
                                      ("revocation", "HF-D1", "reconcile", False)]
    quiet = _reconcile(runner, sandbox, db_url)["activities"]
    assert (quiet["created"], quiet["withdrawn"]) == (0, 0)
    assert len(_activity_rows(db_url)) == 4
    assert ID_NUMBER not in json.dumps(out)  # counts only, no ID numbers


INCOMPLETE = {"completionstatus": {"completed": False, "aggregation": 1, "completions": []}, "warnings": []}
GOOD_CONTENTS = [{"id": 1, "name": "General", "modules": [{"id": 70, "modname": "forum", "completion": 1}]}]


@pytest.mark.parametrize(("contents", "statuses", "function"), [
    ([{"id": 1, "modules": [{"modname": "forum", "completion": 1}]}], {"statuses": []}, "core_course_get_contents"),
    ({"sections": "not a list of sections"}, {"statuses": []}, "core_course_get_contents"),
    (GOOD_CONTENTS, {"statuses": [{"state": 1, "timecompleted": 1795385697}]},
     "core_completion_get_activities_completion_status"),
    (GOOD_CONTENTS, {"statuses": [{"cmid": "seventy", "state": 1}]},
     "core_completion_get_activities_completion_status"),
    (GOOD_CONTENTS, None, "core_completion_get_activities_completion_status"),
], ids=["module-without-id", "contents-not-a-list", "status-without-cmid", "cmid-not-a-number", "null-answer"])
def test_a_broken_activity_answer_is_a_clear_error_and_stores_nothing(
        contents: Any, statuses: Any, function: str, db_url: str, runner: CliRunner) -> None:
    app = Flask("moodle")

    @app.post("/webservice/rest/server.php")
    def ws() -> Any:
        fn = request.form["wsfunction"]
        answers = {"core_webservice_get_site_info": {"siteurl": SITE, "sitename": "t", "username": "admin",
                                                     "userid": 2, "functions": []},
                   "core_enrol_get_enrolled_users": [{"id": 16}],
                   "core_completion_get_course_completion_status": INCOMPLETE,
                   "core_course_get_contents": contents,
                   "core_completion_get_activities_completion_status": statuses,
                   "core_course_get_course_module": {"cm": {"id": 70, "idnumber": "HF-D1"}, "warnings": []}}
        return app.response_class(json.dumps(answers[fn]), mimetype="application/json")

    store = open_store(db_url)
    seed(store)
    store.dispose()
    handle = serve_in_thread(app)
    try:
        env = {"CREDITBRIDGE_MOODLE_URL": handle.url, "CREDITBRIDGE_MOODLE_TOKEN": "TOKEN",
               "CREDITBRIDGE_DATABASE_URL": db_url}
        result = runner.invoke(cli, ["intake", "reconcile", "--json"], env=env)
    finally:
        handle.stop()
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and function in result.output and "unexpected answer" in result.output
    assert "Traceback" not in result.output
    assert _activity_rows(db_url) == []
