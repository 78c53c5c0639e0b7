"""Each typed method sends exactly the form fields of the recorded exchange and returns its answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from moodle_ws_fixtures import request_fields, ws_calls

from creditbridge.connector import errors
from creditbridge.connector.encoding import decode_params
from creditbridge.connector.moodle import MoodleClient

URL = "http://moodle.test"
ENDPOINT = URL + "/webservice/rest/server.php"

ENTRIES = {entry["title"]: entry for _, entry in ws_calls()}



def _recorded(title: str, key: str) -> list[dict[str, Any]]:
    """The list a caller would pass for `key`, rebuilt from the recorded form fields."""
    return decode_params(request_fields(ENTRIES[title]).items())[key]


def _ints(items: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: int(v) if k in keys else v for k, v in item.items()} for item in items]


# (recorded title, the call a user of the client makes for it)
CASES: list[tuple[str, Callable[[MoodleClient], Any]]] = [
    ("Site info (JSON, POST)", lambda c: c.get_site_info()),
    ("Get users by field=username (2 found, 1 not found)",
     lambda c: c.get_users_by_field("username", ["tch100001", "tch100002", "nosuchuser"])),
    ("core_user_get_users two criteria (AND)", lambda c: c.get_users({"lastname": "Tremblay", "firstname": "Benoit"})),
    ("Update user: names, email, custom fields", lambda c: c.update_users([{
        "id": 5, "lastname": "Ngata-Smith", "email": "aroha.ngata@example.org",
        "customfields": [{"type": "stage", "value": "Secondary"}, {"type": "rural", "value": False}]}])),
    ("Delete 1 user", lambda c: c.delete_users([10])),
    ("Create 2 sub-categories in one call", lambda c: c.create_categories([
        {"name": "Mathematics PD", "idnumber": "CE-MATH", "parent": 2},
        {"name": "Wellbeing", "idnumber": "CE-WELL", "parent": 2}])),
    ("Get categories by idnumber (no subcategories)",
     lambda c: c.get_categories({"idnumber": "CE-MATH"}, addsubcategories=False)),
    ("Get categories by parent", lambda c: c.get_categories({"parent": 2})),
    ("Get course by idnumber (includes customfields)", lambda c: c.get_courses_by_field("idnumber", "PD-MATH101")),
    ("Update course: fullname, visibility and custom field",
     lambda c: c.update_courses(_recorded("Update course: fullname, visibility and custom field", "courses"))),
    ("Create a course with completion enabled",
     lambda c: c.create_courses(_recorded("Create a course with completion enabled", "courses"))),
    ("Create two learners", lambda c: c.create_users(_recorded("Create two learners", "users"), precheck=False)),
    ("Create 2 cohorts (system context, and category context by idnumber)",
     lambda c: c.create_cohorts(_recorded("Create 2 cohorts (system context, and category context by idnumber)",
                                          "cohorts"))),
    ("Get cohort members", lambda c: c.get_cohort_members([1, 2])),
    ("Get cohorts by id", lambda c: c.get_cohorts([1, 2])),
    ("Search cohorts (system context, includes=all)", lambda c: c.search_cohorts("teachers")),
    ("Remove a cohort member", lambda c: c.delete_cohort_members([{"cohortid": 1, "userid": 6}])),
    ("Course contents (to find cmids)", lambda c: c.get_course_contents(7)),
    ("Enrolled users of a course", lambda c: c.get_enrolled_users(2)),
    ("Enrol learners", lambda c: c.enrol_users(_ints(_recorded("Enrol learners", "enrolments"),
                                                      "roleid", "userid", "courseid"))),
    ("Unenrol a user", lambda c: c.unenrol_users([{"userid": 6, "courseid": 2}])),
    ("Activities completion status before anything", lambda c: c.get_activities_completion_status(7, 16)),
    ("Course completion status before anything", lambda c: c.get_course_completion_status(7, 16)),
    ("Learner self-completes the course", lambda c: c.mark_course_self_completed(7)),
    ("Learner marks activity 1 complete (learner token)",
     lambda c: c.update_activity_completion_status_manually(7, True)),
    ("Teacher/admin override: mark activity 1 complete for learner 2",
     lambda c: c.override_activity_completion_status(17, 7, 1)),
]


def _replay(entry: dict[str, Any], sent: list[list[tuple[str, str]]]) -> Callable[[Any], tuple[int, dict, str]]:
    def callback(request: Any) -> tuple[int, dict, str]:
        sent.append(parse_qsl(request.body, keep_blank_values=True))
        return 200, {}, entry["response"]["body"]
    return callback


def _check(title: str, call: Callable[[MoodleClient], Any]) -> Any:
    entry = ENTRIES[title]
    token = request_fields(entry)["wstoken"]  # some calls were recorded with a learner's token
    sent: list[list[tuple[str, str]]] = []
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, callback=_replay(entry, sent), content_type="application/json")
        result = call(MoodleClient.from_url(URL, token))
    assert sent[0] == list(request_fields(entry).items())
    return result


@pytest.mark.parametrize(("title", "call"), CASES, ids=[t for t, _ in CASES])
def test_typed_method_sends_the_recorded_request(title: str, call: Callable[[MoodleClient], Any]) -> None:
    result = _check(title, call)
    recorded = json.loads(ENTRIES[title]["response"]["body"])
    if hasattr(result, "succeeded"):
        assert not result.failed
        if isinstance(recorded, list):
            assert [answer for _, answer in result.succeeded] == recorded
    elif isinstance(recorded, dict) and ("courses" in recorded or "cohorts" in recorded):
        assert result == recorded.get("courses", recorded.get("cohorts"))
    else:
        assert result == recorded


def test_enrol_with_datetimes() -> None:
    title = "Enrol 2 users as student (roleid 5), one with timestart/timeend"
    enrolments = _recorded(title, "enrolments")
    for e in enrolments:
        for key in ("timestart", "timeend"):
            if key in e:
                e[key] = datetime.fromtimestamp(int(e[key]), tz=UTC)
    assert any(isinstance(e.get("timestart"), datetime) for e in enrolments)
    result = _check(title, lambda c: c.enrol_users(enrolments))
    assert result.ok and len(result.succeeded) == 2


def test_get_enrolled_users_pages_through() -> None:
    pages = [ENTRIES[f"Enrolled users, page {n}" + suffix]
             for n, suffix in ((1, " (limitfrom=0, limitnumber=1)"), (2, " (limitfrom=1, limitnumber=1)"),
                               (3, " (empty)"))]
    sent: list[list[tuple[str, str]]] = []
    bodies = iter(pages)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, content_type="application/json",
                          callback=lambda r: sent.append(parse_qsl(r.body))
                          or (200, {}, next(bodies)["response"]["body"]))
        users = MoodleClient.from_url(URL, "TOKEN").get_enrolled_users(7, page_size=1, userfields=["id", "username"])
    assert [u["username"] for u in users] == ["tch200001", "tch200002"]
    assert sent == [list(request_fields(p).items()) for p in pages]


def test_completion_error_class() -> None:
    entry = next(e for e in ENTRIES.values() if '"usernotenroled"' in e["response"]["body"])
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, body=entry["response"]["body"], content_type="application/json")
        client = MoodleClient.from_url(URL, "TOKEN")
        with pytest.raises(errors.CompletionError) as info:
            client.get_course_completion_status(7, 99)
    assert info.value.errorcode == "usernotenroled"


@pytest.mark.parametrize("ignores_paging", [False, True])
def test_iter_cohorts_pages_on_and_stops_on_a_site_that_ignores_paging(ignores_paging: bool) -> None:
    """iter_cohorts asks page after page (`limitfrom` is a page number for this function) until a short page;
    a site answering every page with the same cohorts is read once more, not for ever."""
    cohorts = [{"id": n, "name": f"c{n}", "idnumber": f"school:{n}", "description": "", "descriptionformat": 1,
                "visible": True, "theme": None} for n in range(1, 6)]
    pages: list[int] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        page = int(dict(parse_qsl(request.body))["limitfrom"])
        pages.append(page)
        chunk = cohorts[:2] if ignores_paging else cohorts[page * 2:page * 2 + 2]
        return 200, {}, json.dumps({"cohorts": chunk})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, content_type="application/json", callback=answer)
        found = [c["id"] for c in MoodleClient.from_url(URL, "TOKEN").iter_cohorts("school:", perpage=2)]
    assert found == ([1, 2] if ignores_paging else [1, 2, 3, 4, 5])
    assert pages == ([0, 1] if ignores_paging else [0, 1, 2])


@pytest.mark.parametrize("item", [{"courseid": "abc", "manualid": 3, "welcome": 1},
                                  {"courseid": None, "manualid": 3, "welcome": 1},
                                  {"manualid": 3, "welcome": 1}])
def test_get_courses_sending_welcome_refuses_an_answer_naming_no_course(item: dict[str, Any]) -> None:
    """Hostile review: a site (a broken plugin, a proxy) answering an entry whose courseid is no number stopped
    sync with a ValueError traceback (or, with none, silently looked at no course). It is the client's
    ProtocolError, which the run reports as `error: ...` like any other answer of the wrong shape."""
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, ENDPOINT, json=[item])
        with pytest.raises(errors.ProtocolError, match="courseid"):
            MoodleClient.from_url(URL, "TOKEN").get_courses_sending_welcome([7])


def test_get_courses_sending_welcome_reads_each_course_once_in_lookups() -> None:
    asked: list[list[str]] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        asked.append([v for k, v in parse_qsl(request.body) if k.startswith("courseids[")])
        return 200, {}, json.dumps([{"courseid": "7", "manualid": "3", "welcome": "1"}])

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, content_type="application/json", callback=answer)
        found = MoodleClient.from_url(URL, "TOKEN").get_courses_sending_welcome([7, 7, 8])
    assert asked == [["7", "8"]]
    assert found == [{"courseid": 7, "manualid": 3, "welcome": 1}]


@pytest.mark.parametrize("answer", [{}, {"cohorts": None}, {"cohorts": [{"name": "c1", "idnumber": "school:1"}]},
                                    {"cohorts": [{"id": "x", "idnumber": "school:1"}]}])
def test_iter_cohorts_refuses_an_answer_without_cohort_ids(answer: dict[str, Any]) -> None:
    """Hostile review: a search answered without its `cohorts` list, or with a cohort without a numeric id, was a
    KeyError/TypeError/ValueError out of sync (adopting a cohort, the audiences' check). It is the client's
    ProtocolError, reported as `error: ...` like any other answer of the wrong shape."""
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, ENDPOINT, json=answer)
        with pytest.raises(errors.ProtocolError, match="cohort"):
            list(MoodleClient.from_url(URL, "TOKEN").iter_cohorts("school:", perpage=2))
