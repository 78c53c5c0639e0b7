"""Moodle's REST protocol details the sandbox reproduces: decoding, validation, formats, limits, events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from lxml import etree

from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread
from creditbridge.sandbox.wsformat import MAX_INPUT_VARS, php_decode

WS = "/webservice/rest/server.php"


def post(server: Any, **fields: Any) -> requests.Response:
    data = {"wstoken": server.token, "moodlewsrestformat": "json", **fields}
    return requests.post(server.url + WS, data=data, timeout=30)


def user_fields(n: int, prefix: str = "users[0]") -> dict[str, str]:
    return {f"{prefix}[username]": f"proto{n}", f"{prefix}[password]": "Teach#2024a", f"{prefix}[firstname]": "P",
            f"{prefix}[lastname]": f"L{n}", f"{prefix}[email]": f"proto{n}@example.org"}


def test_php_decoding_of_nested_names() -> None:
    decoded = php_decode([("users[0][customfields][1][type]", "stage"), ("users[0][customfields][1][value]", "x"),
                          ("values[]", "a"), ("values[]", "b"), ("plain", "1"), ("plain", "2")])
    assert decoded == {"users": {"0": {"customfields": {"1": {"type": "stage", "value": "x"}}}},
                       "values": {"0": "a", "1": "b"}, "plain": "2"}


@pytest.mark.parametrize("value", ["True", "true", "yes", "2", ""])
def test_param_bool_accepts_only_0_and_1(sandbox_server: Any, value: str) -> None:
    answer = post(sandbox_server, wsfunction="core_course_get_categories", addsubcategories=value).json()
    assert answer == {"exception": "core\\exception\\invalid_parameter_exception", "errorcode": "invalidparameter",
                      "message": "Invalid parameter value detected"}
    assert post(sandbox_server, wsfunction="core_course_get_categories", addsubcategories="0").status_code == 200


def test_debug_mode_explains_invalid_parameters() -> None:
    app = create_app({"SANDBOX_TOKEN": "t", "SANDBOX_DEBUG": True})
    c = app.test_client()
    answer = c.post(WS, data={"wstoken": "t", "moodlewsrestformat": "json", "wsfunction": "core_course_get_categories",
                              "addsubcategories": "True"}).get_json(force=True)
    assert answer["debuginfo"] == ('addsubcategories => Invalid parameter value detected: Invalid external api '
                                   'parameter: the value is "True", the server was expecting "bool" type')
    answer = c.post(WS, data={"wstoken": "t", "moodlewsrestformat": "json", "wsfunction": "core_user_create_users",
                              **user_fields(1), "users[0][suspended]": "0"}).get_json(force=True)
    assert answer["debuginfo"] == "users => Invalid parameter value detected: Unexpected keys (suspended) detected " \
                                  "in parameter array."
    state_of(app).close()


def test_token_in_the_query_string_and_get(sandbox_server: Any) -> None:
    r = requests.get(sandbox_server.url + WS, timeout=10, params={"wstoken": sandbox_server.token,
                                                                  "wsfunction": "core_webservice_get_site_info",
                                                                  "moodlewsrestformat": "json"})
    assert r.json()["userid"] == 2 and r.headers["Content-Type"] == "application/json"


def test_xml_by_default_with_nulls_for_absent_optional_keys(sandbox_server: Any) -> None:
    r = requests.post(sandbox_server.url + WS, timeout=10, data={"wstoken": sandbox_server.token,
                                                                 "wsfunction": "core_webservice_get_site_info"})
    assert r.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'inline; filename="response.xml"'
    root = etree.fromstring(r.content)
    assert root.tag == "RESPONSE"
    homepage = root.find("SINGLE/KEY[@name='userhomepageurl']/VALUE")
    assert homepage is not None and homepage.get("null") == "null"
    assert root.find("SINGLE/KEY[@name='userissiteadmin']/VALUE").text == "1"
    nothing = requests.post(sandbox_server.url + WS, timeout=10, data={
        "wstoken": sandbox_server.token, "wsfunction": "core_user_delete_users", "userids[0]": "999"})
    assert etree.fromstring(nothing.content).findtext("ERRORCODE") == "invaliduser"


def test_functions_returning_nothing_answer_null(sandbox_server: Any) -> None:
    post(sandbox_server, wsfunction="core_user_create_users", **user_fields(2))
    r = post(sandbox_server, wsfunction="core_user_delete_users", **{"userids[0]": "3"})
    assert r.text == "null"


def test_max_input_vars_cuts_the_post_body(sandbox_server: Any) -> None:
    """PHP keeps max_input_vars + 1 POST variables: a 5-field user past the cut arrives without its email."""
    fields: dict[str, str] = {}
    per_user = 5
    count = (MAX_INPUT_VARS - 3) // per_user + 1
    for i in range(count):
        fields.update(user_fields(1000 + i, f"users[{i}]"))
    r = post(sandbox_server, wsfunction="core_user_create_users", **fields)
    kept_users = (MAX_INPUT_VARS + 1 - 3) // per_user  # 999 whole users, then 2 fields of the next one
    assert r.json()["errorcode"] == "invalidparameter"
    fewer = {k: v for k, v in fields.items() if int(k.split("]")[0][6:]) < kept_users}
    created = post(sandbox_server, wsfunction="core_user_create_users", **fewer).json()
    assert len(created) == kept_users


def test_completion_events_reach_listeners_after_commit(sandbox_server: Any) -> None:
    state = sandbox_server.state
    heard: list[dict[str, Any]] = []
    state.add_completion_listener(heard.append)
    uid = state.create_user("learner", idnumber="L-1")
    created = post(sandbox_server, wsfunction="core_course_create_courses", **{
        "courses[0][fullname]": "C", "courses[0][shortname]": "C-9", "courses[0][idnumber]": "PD-9",
        "courses[0][categoryid]": "1"}).json()
    courseid = created[0]["id"]
    cmid = state.add_course_module(courseid, "quiz", "Quiz 1", "ACT-9")
    state.set_activity_completion(cmid, uid, 1)
    with pytest.raises(RuntimeError), state.transaction():
        state.complete_course(courseid, uid)
        raise RuntimeError("rolled back: nobody hears about it")
    state.complete_course(courseid, uid, when=1_700_000_000)
    assert [e["eventname"] for e in heard] == ["\\core\\event\\course_module_completion_updated",
                                              "\\core\\event\\course_completed"]
    activity, course = heard
    assert (activity["relateduserid"], activity["contextinstanceid"], activity["other"]["completionstate"]) == \
        (uid, cmid, 1)
    assert (course["userid"], course["relateduserid"], course["courseid"]) == (2, uid, courseid)
    cm = state.get_course_module(cmid)
    assert (cm["cmid"], cm["idnumber"], cm["modname"]) == (cmid, "ACT-9", "quiz")
    assert state.get_course(courseid)["idnumber"] == "PD-9"
    assert state.get_user(uid)["username"] == "learner"
    assert json.loads(post(sandbox_server, wsfunction="core_enrol_get_course_enrolment_methods",
                           courseid=str(courseid)).text) == []


def test_webhook_sender_is_installed_when_configured() -> None:
    received: list[bytes] = []
    from flask import Flask, request

    hook = Flask("hook")

    @hook.post("/hook")
    def take() -> tuple[str, int]:
        received.append(request.get_data())
        return "", 202

    served = serve_in_thread(hook)
    app = create_app({"SANDBOX_TOKEN": "t", "SANDBOX_WEBHOOK_URL": served.url + "/hook",
                      "SANDBOX_WEBHOOK_SECRET": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "SANDBOX_WWWROOT":
                      "http://sandbox.test"})
    try:
        state = state_of(app)
        uid = state.create_user("hooked")
        c = app.test_client()
        c.post(WS, data={"wstoken": "t", "wsfunction": "core_course_create_courses", "courses[0][fullname]": "C",
                         "courses[0][shortname]": "H1", "courses[0][idnumber]": "H-1", "courses[0][categoryid]": "1"})
        r = c.post("/sandbox/admin/course_completion", data={"wstoken": "t", "userid": uid, "courseid": 2})
        assert r.status_code == 200
        sender = app.extensions["sandbox_webhook_sender"]
        sender.flush()
        sender.stop()
        [body] = received
        payload = json.loads(body)
        assert (payload["event"], payload["site"], payload["user"], payload["course"]) == (
            "course_completed", "http://sandbox.test", {"id": uid, "username": "hooked", "idnumber": ""},
            {"id": 2, "idnumber": "H-1"})
    finally:
        served.stop()


def test_token_kinds(sandbox_server: Any) -> None:
    state = sandbox_server.state
    plain = state.mint_token(state.create_user("plain"), "norest")
    suspended_user = state.create_user("gone", suspended=1)
    suspended = state.mint_token(suspended_user)

    def ask(token: str) -> dict[str, Any]:
        return requests.post(sandbox_server.url + WS, timeout=10, data={
            "wstoken": token, "wsfunction": "core_webservice_get_site_info", "moodlewsrestformat": "json"}).json()

    assert ask(plain) == {"exception": "webservice_access_exception", "errorcode": "accessexception",
                          "message": "Access control exception"}
    assert ask(suspended)["errorcode"] == "wsaccessusersuspended"
    assert ask("")["errorcode"] == "invalidtoken"
    r = requests.post(sandbox_server.url + WS, timeout=10, json={"wstoken": sandbox_server.token,
                                                                 "wsfunction": "core_webservice_get_site_info"})
    assert "invalidtoken" in r.text  # a JSON request body is not read by Moodle's REST server


def test_access_log_never_shows_a_token(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app({"SANDBOX_TOKEN": "secret-admin-token"})
    handle = serve_in_thread(app, log_requests=True)
    try:
        with caplog.at_level("INFO", logger="werkzeug"):
            requests.get(handle.url + WS, timeout=10, params={"wstoken": "secret-admin-token",
                                                               "wsfunction": "core_webservice_get_site_info"})
    finally:
        handle.stop()
        state_of(app).close()
    assert "GET /webservice/rest/server.php" in caplog.text and "secret-admin-token" not in caplog.text


def test_mutated_recorded_requests_always_get_a_moodle_answer() -> None:
    """Recorded requests with values swapped for odd ones: always HTTP 200 and a well-formed answer, never a
    server error (a crash would hide what Moodle would have said)."""
    import random

    from tests_paths import FIXTURES

    calls = [dict(e["request"]["params"]) for f in sorted(FIXTURES.glob("*.json"))
             for e in json.loads(f.read_text(encoding="utf-8"))["entries"]
             if e["kind"] == "ws_call" and e["request"].get("params") and not e["request"].get("params_elided")]
    app = create_app({"SANDBOX_TOKEN": "t"})
    c = app.test_client()
    rnd = random.Random(7)
    for _ in range(400):
        fields = dict(rnd.choice(calls))
        fields["wstoken"], fields["moodlewsrestformat"] = "t", rnd.choice(["json", "xml"])
        for key in [k for k in fields if k not in {"wstoken", "wsfunction", "moodlewsrestformat"}]:
            if rnd.random() < 0.15:
                fields[key] = rnd.choice(["0", "", "-1", "999999", "abc", "2", "7", "2,3", "99999999999999999999"])
            elif rnd.random() < 0.05:
                del fields[key]
        r = c.post(WS, data=fields)
        assert r.status_code == 200, fields
        if fields["moodlewsrestformat"] == "json":
            json.loads(r.data)
        else:
            etree.fromstring(r.data)
    state_of(app).close()


def test_site_url_is_where_it_is_served_unless_configured() -> None:
    app = create_app({"SANDBOX_TOKEN": "t", "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/hook",
                      "SANDBOX_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    handle = serve_in_thread(app)
    try:
        info = requests.post(handle.url + WS, timeout=10, data={
            "wstoken": "t", "wsfunction": "core_webservice_get_site_info", "moodlewsrestformat": "json"}).json()
        assert info["siteurl"] == handle.url == app.extensions["sandbox_webhook_sender"].site
    finally:
        handle.stop()
        app.extensions["sandbox_webhook_sender"].stop()
        state_of(app).close()
