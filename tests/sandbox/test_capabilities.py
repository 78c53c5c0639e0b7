"""The sandbox is as strict as the real site (roles.json, deliveries.json, the recordings' README): a token
user with the docs' role gets nopermissions warnings, hidden emails, wsusercannotassign; welcome messages
are sent and recorded, and fail the way Moodle fails; a grade is sent as plugin 1.1.0 sends it (no course total)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask, request
from site_admin import admin, docs_site, ws

from creditbridge.cli.main import cli
from creditbridge.connector.functions import READINESS_FUNCTION
from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread
from creditbridge.webhooks.payload import WebhookPayload
from creditbridge.webhooks.processing import check_creditable

WS = "/webservice/rest/server.php"
NOPERM = "Sorry, but you do not currently have permissions to do that ({})."


def _course(server: Any, token: str, shortname: str, **extra: str) -> int:
    made = ws(server, token, "core_course_create_courses", **{
        "courses[0][fullname]": f"Course {shortname}", "courses[0][shortname]": shortname,
        "courses[0][categoryid]": "1", **{f"courses[0][{k}]": v for k, v in extra.items()}})
    return int(made[0]["id"])


def _user(server: Any, token: str, username: str, **custom: str) -> int:
    fields = {"users[0][username]": username, "users[0][password]": "Teach#2024a", "users[0][firstname]": "A",
              "users[0][lastname]": "B", "users[0][email]": f"{username}@example.org"}
    for i, (k, v) in enumerate(custom.items()):
        fields.update({f"users[0][customfields][{i}][type]": k, f"users[0][customfields][{i}][value]": v})
    return int(ws(server, token, "core_user_create_users", **fields)[0]["id"])


def _course_row(server: Any, courseid: int) -> dict[str, Any]:
    return ws(server, server.token, "core_course_get_courses_by_field", field="id", value=str(courseid))["courses"][0]


def test_course_update_names_only_the_first_failed_check_and_changes_nothing(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    for cap in ("moodle/course:changefullname", "moodle/course:changecategory", "moodle/course:changesummary"):
        admin(sandbox_server, "capability", capability=cap, allow=0)
    cat = ws(sandbox_server, token, "core_course_create_categories", **{"categories[0][name]": "Other"})[0]["id"]
    a, b = _course(sandbox_server, token, "A"), _course(sandbox_server, token, "B")
    answer = ws(sandbox_server, token, "core_course_update_courses", **{
        "courses[0][id]": str(a), "courses[0][fullname]": "Renamed", "courses[0][categoryid]": str(cat),
        "courses[1][id]": str(b), "courses[1][summary]": "New summary"})
    refused = "nopermissions"
    assert answer == {"warnings": [
        {"item": "course", "itemid": a, "warningcode": refused, "message": NOPERM.format("Change course category")},
        {"item": "course", "itemid": b, "warningcode": refused, "message": NOPERM.format("Change course summary")}]}
    row = _course_row(sandbox_server, a)
    assert (row["fullname"], row["categoryid"]) == ("Course A", 1)
    assert _course_row(sandbox_server, b)["summary"] == ""
    # The same value as stored is no change: no capability asked.
    same = ws(sandbox_server, token, "core_course_update_courses", **{"courses[0][id]": str(a),
                                                                     "courses[0][fullname]": "Course A"})
    assert same == {"warnings": []}
    admin(sandbox_server, "capability", capability="moodle/course:changecategory", allow=1)
    answer = ws(sandbox_server, token, "core_course_update_courses", **{
        "courses[0][id]": str(a), "courses[0][fullname]": "Renamed", "courses[0][categoryid]": str(cat)})
    assert answer["warnings"][0]["message"] == NOPERM.format("Change course full name")
    admin(sandbox_server, "capability", capability="moodle/course:changefullname", allow=1)
    answer = ws(sandbox_server, token, "core_course_update_courses", **{
        "courses[0][id]": str(a), "courses[0][fullname]": "Renamed", "courses[0][categoryid]": str(cat)})
    assert answer == {"warnings": []}
    row = _course_row(sandbox_server, a)
    assert (row["fullname"], row["categoryid"]) == ("Renamed", cat)


def test_email_needs_viewuseridentity(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    _user(sandbox_server, token, "tch1")
    admin(sandbox_server, "capability", capability="moodle/site:viewuseridentity", allow=0)
    assert ws(sandbox_server, token, "core_user_get_users_by_field", field="email",
              **{"values[0]": "tch1@example.org"}) == []
    by_name = ws(sandbox_server, token, "core_user_get_users_by_field", field="username", **{"values[0]": "tch1"})
    assert len(by_name) == 1 and "email" not in by_name[0] and by_name[0]["username"] == "tch1"
    admin(sandbox_server, "capability", capability="moodle/site:viewuseridentity", allow=1)
    found = ws(sandbox_server, token, "core_user_get_users_by_field", field="email",
               **{"values[0]": "tch1@example.org"})
    assert [u["email"] for u in found] == ["tch1@example.org"]
    # Case-sensitive lookup, as on the real site, while the duplicate check on create is not (issue 13, item 4).
    assert ws(sandbox_server, token, "core_user_get_users_by_field", field="email",
              **{"values[0]": "TCH1@example.org"}) == []
    clash = ws(sandbox_server, token, "core_user_create_users", **{
        "users[0][username]": "tch1b", "users[0][password]": "Teach#2024a", "users[0][firstname]": "A",
        "users[0][lastname]": "B", "users[0][email]": "TCH1@Example.org"})
    assert clash == {"exception": "core\\exception\\invalid_parameter_exception", "errorcode": "invalidparameter",
                     "message": "Invalid parameter value detected"}


def test_unknown_profile_field_is_dropped_and_stored_once_the_field_exists(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    _user(sandbox_server, token, "tch2", school="Lakeview", township="Shubenacadie")
    admin(sandbox_server, "profile_field", shortname="township", action="add", name="Township")
    _user(sandbox_server, token, "tch3", school="Lakeview", township="Shubenacadie")
    users = ws(sandbox_server, token, "core_user_get_users_by_field", field="username",
               **{"values[0]": "tch2", "values[1]": "tch3"})
    fields = {u["username"]: {f["shortname"]: f["value"] for f in u["customfields"]} for u in users}
    assert fields == {"tch2": {"rural": "0", "school": "Lakeview"},
                      "tch3": {"rural": "0", "school": "Lakeview", "township": "Shubenacadie"}}


def test_a_role_the_token_user_may_not_assign(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    uid, cid = _user(sandbox_server, token, "tch4"), _course(sandbox_server, token, "C4")
    answer = ws(sandbox_server, token, "enrol_manual_enrol_users", **{
        "enrolments[0][roleid]": "3", "enrolments[0][userid]": str(uid), "enrolments[0][courseid]": str(cid)})
    assert answer == {"exception": "core\\exception\\moodle_exception", "errorcode": "wsusercannotassign",
                      "message": f"You don't have the permission to assign this role (3) to this user ({uid}) in "
                                 f"this course ({cid})."}
    assert ws(sandbox_server, sandbox_server.token, "enrol_manual_enrol_users", **{
        "enrolments[0][roleid]": "3", "enrolments[0][userid]": str(uid), "enrolments[0][courseid]": str(cid)}) is None


def test_without_rest_use_the_role_user_is_refused(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "capability", capability="webservice/rest:use", allow=0)
    assert ws(sandbox_server, token, "core_webservice_get_site_info")["errorcode"] == "accessexception"


def _messages(server: Any) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/sandbox/admin/welcome_messages", params={"wstoken": server.token}, timeout=10)
    assert r.status_code == 200
    return r.json()["messages"]


def _enrol(server: Any, token: str, pairs: list[tuple[int, int]]) -> Any:
    fields: dict[str, str] = {}
    for i, (uid, cid) in enumerate(pairs):
        fields.update({f"enrolments[{i}][roleid]": "5", f"enrolments[{i}][userid]": str(uid),
                       f"enrolments[{i}][courseid]": str(cid)})
    return ws(server, token, "enrol_manual_enrol_users", **fields)


def test_manual_enrolment_sends_welcome_messages_by_default(sandbox_server: Any) -> None:
    token = admin(sandbox_server, "role_user")["token"]
    uid, cid = _user(sandbox_server, token, "tch5"), _course(sandbox_server, token, "C5")
    assert _enrol(sandbox_server, token, [(uid, cid)]) is None
    assert _messages(sandbox_server) == [{"courseid": cid, "userid": uid, "sendoption": 1, "status": "sent"}]
    assert _enrol(sandbox_server, token, [(uid, cid)]) is None  # enrolled already: no second message
    assert len(_messages(sandbox_server)) == 1


def test_welcome_messages_off_per_instance_and_by_default(sandbox_server: Any) -> None:
    token = admin(sandbox_server, "role_user")["token"]
    uid = _user(sandbox_server, token, "tch6")
    old = _course(sandbox_server, token, "OLD")
    admin(sandbox_server, "welcome", sendoption=0, scope="default")
    new = _course(sandbox_server, token, "NEW")
    assert _enrol(sandbox_server, token, [(uid, new)]) is None
    assert _messages(sandbox_server) == []
    admin(sandbox_server, "welcome", sendoption=0, scope="instances", courseid=old)
    assert _enrol(sandbox_server, token, [(uid, old)]) is None
    assert _messages(sandbox_server) == []


def test_failing_mail_saves_the_enrolment_then_answers_the_error(sandbox_server: Any) -> None:
    token = admin(sandbox_server, "role_user")["token"]
    uid, cid = _user(sandbox_server, token, "tch7"), _course(sandbox_server, token, "C7")
    admin(sandbox_server, "switch", name="mail_fails", on=1)
    answer = _enrol(sandbox_server, token, [(uid, cid)])
    assert answer == {"exception": "core\\exception\\moodle_exception", "errorcode": "Message was not sent.",
                      "message": "error/Message was not sent."}
    enrolled = ws(sandbox_server, token, "core_enrol_get_enrolled_users", courseid=str(cid))
    assert [u["id"] for u in enrolled] == [uid]
    assert _messages(sandbox_server)[0]["status"] == "failed"
    # With welcome messages off, failing mail does not matter.
    admin(sandbox_server, "welcome", sendoption=0, scope="all")
    other = _user(sandbox_server, token, "tch8")
    assert _enrol(sandbox_server, token, [(other, cid)]) is None


@pytest.fixture
def hook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A receiver that keeps every delivery (headers, body) and answers 202, like the recording's server."""
    received: list[tuple[dict[str, str], bytes]] = []
    app = Flask("hook")

    @app.post("/hook")
    def take() -> tuple[str, int]:
        received.append((dict(request.headers), request.get_data()))
        return "", 202

    served = serve_in_thread(app)
    try:
        yield served.url + "/hook", received
    finally:
        served.stop()


def _site_with_sender(url: str) -> Flask:
    return create_app({"SANDBOX_TOKEN": "t", "SANDBOX_WEBHOOK_URL": url, "SANDBOX_WWWROOT": "http://sandbox.test",
                       "SANDBOX_WEBHOOK_SECRET": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})


def _graded_site(app: Flask) -> tuple[int, int]:
    state = state_of(app)
    uid = state.create_user("learner1")
    app.test_client().post(WS, data={"wstoken": "t", "wsfunction": "core_course_create_courses",
                                     "courses[0][fullname]": "G", "courses[0][shortname]": "G1",
                                     "courses[0][idnumber]": "G-1", "courses[0][categoryid]": "1"})
    return uid, state.add_course_module(2, "assign", "Workshop", completion=0)


def test_a_grade_is_sent_naming_its_activity_and_grade_item_and_the_course_total_is_not(hook: Any) -> None:
    """As plugin 1.1.0 and later send (golden pairs 05 and 07): the activity's grade names the activity and its
    grade item; the course total's user_graded, raised beside it, is not sent."""
    url, received = hook
    app = _site_with_sender(url)
    try:
        uid, cmid = _graded_site(app)
        r = app.test_client().post("/sandbox/admin/activity_completion", data={
            "wstoken": "t", "userid": uid, "cmid": cmid, "completionstate": 0, "grade": 85, "grademax": 100})
        assert r.status_code == 200
        sender = app.extensions["sandbox_webhook_sender"]
        sender.flush()
        sender.stop()
        instance = state_of(app).get_course_module(cmid)["instance"]
    finally:
        state_of(app).close()
    grades = [json.loads(b) for _, b in received if json.loads(b)["event"] == "grade_updated"]
    assert len(grades) == 1 and sender.skipped == 1
    grade = grades[0]
    assert grade["activity"] == {"cmid": cmid, "idnumber": "", "modname": "assign"}
    assert grade["gradeitem"] == {"id": cmid, "itemtype": "mod", "itemmodule": "assign", "iteminstance": instance,
                                  "idnumber": ""}
    assert (grade["grade"], grade["grademax"]) == (85, 100)
    assert grade["user"] == {"id": uid, "username": "learner1", "idnumber": ""}
    # What the receiver makes of it: a creditable grade (check_creditable refuses course totals and item-less
    # grades only).
    check_creditable(WebhookPayload.model_validate(grade))


def test_a_blocked_receiver_gets_nothing(hook: Any, caplog: pytest.LogCaptureFixture) -> None:
    url, received = hook
    app = _site_with_sender(url)
    try:
        uid, _ = _graded_site(app)
        c = app.test_client()
        switched = c.post("/sandbox/admin/switch", data={"wstoken": "t", "name": "receiver_blocked", "on": "1"})
        assert switched.status_code == 200
        c.post("/sandbox/admin/course_completion", data={"wstoken": "t", "userid": uid, "courseid": 2})
        sender = app.extensions["sandbox_webhook_sender"]
        sender.flush()
        assert received == [] and sender.failed == 1
        assert "Webhook send failed (The URL is blocked.)" in caplog.text
        readiness = c.post(WS, data={"wstoken": "t", "wsfunction": READINESS_FUNCTION, "moodlewsrestformat": "json"})
        assert readiness.get_json(force=True)["receiver"] == {"url": url, "blocked": 1, "reason": "The URL is blocked."}
        sender.stop()
    finally:
        state_of(app).close()


@pytest.mark.parametrize(("query_format", "json_answer"), [({"moodlewsrestformat": "json"}, True), ({}, False)])
def test_json_body_with_the_format_in_the_query_string(sandbox_server: Any, query_format: dict[str, str],
                                                       json_answer: bool) -> None:
    """Issue 13 item 9: Moodle merges $_GET and $_POST; a JSON body is not parsed into $_POST, so the query
    string's moodlewsrestformat decides the format, and the body's parameters are not seen."""
    query = {"wstoken": sandbox_server.token, "wsfunction": "core_webservice_get_site_info", **query_format}
    r = requests.post(f"{sandbox_server.url}{WS}", params=query,
                      json={"moodlewsrestformat": "xml", "serviceshortnames": ["x"]}, timeout=10)
    assert r.status_code == 200
    if json_answer:
        assert r.headers["Content-Type"] == "application/json" and r.json()["username"] == "admin"
    else:
        assert r.headers["Content-Type"].startswith("application/xml") and "<RESPONSE>" in r.text


@pytest.mark.parametrize(("endpoint", "fields", "status", "message"), [
    ("capability", {"capability": "moodle/course:changefullname; DROP", "allow": "0"}, 400, "capability"),
    ("capability", {"capability": "moodle/course:changefullname", "allow": "yes"}, 400, "allow"),
    ("capability", {"allow": "1"}, 400, "missing field: capability"),
    ("switch", {"name": "everything", "on": "1"}, 400, "unknown switch"),
    ("welcome", {"sendoption": "7"}, 400, "sendoption"),
    ("welcome", {"sendoption": "0", "courseid": "999"}, 404, "course 999"),
    ("profile_field", {"shortname": "school", "action": "add"}, 400, "exists"),
    ("profile_field", {"shortname": "nosuch", "action": "remove"}, 404, "no profile field"),
    ("profile_field", {"shortname": "bad name!", "action": "add"}, 400, "shortname"),
    ("course_field", {"shortname": "credit_hours", "action": "drop"}, 400, "action"),
    ("service", {"function": "core_nothing", "present": "0"}, 404, "no function"),
    ("receiver", {"url": "ftp://10.0.0.1/hook"}, 400, "http(s) URL"),
    ("receiver", {"url": "https:///webhooks"}, 400, "with a host"),
    ("receiver", {}, 400, "missing field: url"),
])
def test_admin_switches_refuse_bad_input(sandbox_server: Any, endpoint: str, fields: dict[str, str], status: int,
                                         message: str) -> None:
    r = requests.post(f"{sandbox_server.url}/sandbox/admin/{endpoint}", data={"wstoken": sandbox_server.token,
                                                                               **fields}, timeout=10)
    assert r.status_code == status and message in r.json()["error"]


def test_admin_switches_need_the_admin_token(sandbox_server: Any) -> None:
    token = admin(sandbox_server, "role_user")["token"]
    r = requests.post(f"{sandbox_server.url}/sandbox/admin/capability",
                      data={"wstoken": token, "capability": "moodle/user:create", "allow": "1"}, timeout=10)
    assert r.status_code == 403


def test_docs_role_sandbox_token_is_the_creditbridge_user() -> None:
    app = create_app({"SANDBOX_TOKEN": "docs-token", "SANDBOX_ROLE": "docs"})
    try:
        c = app.test_client()
        info = c.post(WS, data={"wstoken": "docs-token", "wsfunction": "core_webservice_get_site_info",
                                "moodlewsrestformat": "json"}).get_json(force=True)
        assert info["username"] == "creditbridge" and info["userissiteadmin"] is False
        made = c.post(WS, data={"wstoken": "docs-token", "wsfunction": "core_course_create_courses",
                                "moodlewsrestformat": "json", "courses[0][fullname]": "X", "courses[0][shortname]": "X",
                                "courses[0][categoryid]": "1"}).get_json(force=True)
        denied = c.post(WS, data={"wstoken": "docs-token", "wsfunction": "core_course_delete_courses",
                                  "moodlewsrestformat": "json", "courseids[0]": str(made[0]["id"])}
                        ).get_json(force=True)
        assert denied == {"warnings": [{"item": "course", "itemid": made[0]["id"], "warningcode": "cannotdeletecourse",
                                        "message": f"You do not have the permission to delete this course"
                                                   f"{made[0]['id']}"}]}
    finally:
        state_of(app).close()
    with pytest.raises(Exception, match="SANDBOX_ROLE must be one of admin, docs"):
        create_app({"SANDBOX_TOKEN": "t", "SANDBOX_ROLE": "root"})


def test_site_command_changes_the_admin_settings(sandbox_server: Any) -> None:
    """`creditbridge sandbox site`: what an administrator changes, from the command line."""
    token = admin(sandbox_server, "role_user")["token"]
    env = {"CREDITBRIDGE_MOODLE_URL": sandbox_server.url, "CREDITBRIDGE_MOODLE_TOKEN": sandbox_server.token}
    runner = CliRunner()
    done = runner.invoke(cli, ["sandbox", "site", "--welcome", "off", "--deny", "moodle/course:changefullname",
                               "--receiver", "http://10.0.0.9:8080/webhooks/moodle", "--receiver-blocked", "on",
                               "--mail-fails", "on", "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert [a["endpoint"] for a in json.loads(done.stdout)] == ["welcome", "capability", "switch", "receiver",
                                                                 "switch"]
    readiness = ws(sandbox_server, token, READINESS_FUNCTION)
    assert {"name": "moodle/course:changefullname", "allowed": 0} in readiness["capabilities"]
    assert readiness["welcomemessage"] == {"manual_default": 0, "instances_sending": 0}
    assert readiness["receiver"]["blocked"] == 1
    back = runner.invoke(cli, ["sandbox", "site", "--allow", "moodle/course:changefullname"], env=env)
    assert back.exit_code == 0 and "allowed=True" in back.stdout
    assert {"name": "moodle/course:changefullname", "allowed": 1} in \
        ws(sandbox_server, token, READINESS_FUNCTION)["capabilities"]


@pytest.mark.parametrize(("args", "message"), [
    (["--deny", "change everything"], "field capability is not valid: 'change everything'"),
    (["--receiver", "10.0.0.9:8080"], "url must be an http(s) URL"),
    ([], "nothing to change"),
    (["--welcome", "maybe"], "'maybe' is not one of 'on', 'off'"),
])
def test_site_command_refuses_bad_input(sandbox_server: Any, args: list[str], message: str) -> None:
    env = {"CREDITBRIDGE_MOODLE_URL": sandbox_server.url, "CREDITBRIDGE_MOODLE_TOKEN": sandbox_server.token}
    result = CliRunner().invoke(cli, ["sandbox", "site", *args], env=env)
    assert result.exit_code == 2 and message in result.output
    assert sandbox_server.token not in result.output
