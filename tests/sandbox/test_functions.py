"""The sandbox driven the way creditbridge drives Moodle: MoodleClient over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from creditbridge.connector import errors
from creditbridge.connector.moodle import MoodleClient


@pytest.fixture
def client(sandbox_server: Any) -> Iterator[MoodleClient]:
    with MoodleClient.from_url(sandbox_server.url, sandbox_server.token, batch_size=50, backoff_seconds=0) as c:
        yield c


def teacher(n: int, **extra: Any) -> dict[str, Any]:
    return {"username": f"tch{n:06d}", "password": "Teach#2024a", "firstname": "Li", "lastname": f"Wei{n}",
            "email": f"tch{n:06d}@example.org", **extra}


def test_ids_start_like_a_fresh_moodle(client: MoodleClient) -> None:
    info = client.get_site_info()
    assert (info["userid"], info["username"], info["siteid"]) == (2, "admin", 1)
    [(_, created)] = client.create_users([teacher(1)]).succeeded
    assert created == {"id": 3, "username": "tch000001"}
    cats = client.get_categories({"id": 1})
    assert [(c["id"], c["name"]) for c in cats] == [(1, "Category 1")]


def test_custom_profile_fields_round_trip(client: MoodleClient) -> None:
    fields = [{"type": "schoolcode", "value": "370102001"}, {"type": "school", "value": "Jinan No. 1 Primary"},
              {"type": "county", "value": "Lixia"}, {"type": "city", "value": "Jinan"},
              {"type": "stage", "value": "Primary"}, {"type": "rural", "value": "1"},
              {"type": "stage", "value": "Kindergarten"}]  # not a menu option: Moodle drops it silently
    [(_, created)] = client.create_users([teacher(2, customfields=fields[:6])]).succeeded
    [user] = client.get_users_by_field("id", [created["id"]])
    got = {f["shortname"]: (f["value"], f["displayvalue"]) for f in user["customfields"]}
    assert got == {"schoolcode": ("370102001", "370102001"), "stage": ("Primary", "Primary"),
                   "rural": ("1", "Yes"), "school": ("Jinan No. 1 Primary", "Jinan No. 1 Primary"),
                   "county": ("Lixia", "Lixia"), "city": ("Jinan", "Jinan")}
    assert client.update_users([{"id": created["id"], "customfields": fields[6:], "suspended": True}]).ok
    [user] = client.get_users_by_field("username", ["tch000002"])
    assert user["suspended"] is True
    assert {f["shortname"]: f["value"] for f in user["customfields"]}["stage"] == "Primary"


def test_a_failed_batch_creates_nobody_and_uses_up_ids(sandbox_server: Any, client: MoodleClient) -> None:
    client.create_users([teacher(1)])
    with pytest.raises(errors.MoodleError) as info:
        client.call("core_user_create_users", users=[teacher(5), teacher(6, email="tch000001@example.org")])
    assert info.value.errorcode == "invalidparameter" and not info.value.debuginfo
    assert client.get_users_by_field("username", ["tch000005"]) == []
    # the rolled-back insert used id 4, as PostgreSQL's sequence does on the recorded site
    [(_, created)] = client.create_users([teacher(7)]).succeeded
    assert created["id"] == 5


def test_password_policy_and_duplicates(client: MoodleClient) -> None:
    with pytest.raises(errors.MoodleError) as info:
        client.call("core_user_create_users", users=[teacher(8, password="abc")])
    assert info.value.errorcode.startswith("<div>Passwords must be at least 8 characters long.</div>")
    client.create_users([teacher(9)])
    with pytest.raises(errors.InvalidParameterError):
        client.call("core_user_create_users", users=[teacher(9, email="other@example.org")])
    with pytest.raises(errors.InvalidParameterError):
        client.call("core_user_create_users", users=[teacher(10, suspended="True")])


def test_categories_courses_and_custom_fields(client: MoodleClient) -> None:
    [(_, top)] = client.create_categories([{"name": "SD 2022", "idnumber": "SD2022", "parent": 0}]).succeeded
    [(_, sub)] = client.create_categories([{"name": "Primary", "idnumber": "SD2022-P", "parent": top["id"]}]).succeeded
    with pytest.raises(errors.MoodleError) as info:
        client.call("core_course_create_categories", categories=[{"name": "x", "idnumber": "SD2022"}])
    assert info.value.errorcode == "categoryidnumbertaken"
    course = {"fullname": "Reading aloud", "shortname": "C-101", "idnumber": "C-101", "categoryid": sub["id"],
              "enablecompletion": 1, "customfields": [{"shortname": "credit_hours", "value": "7.5"},
                                                     {"shortname": "credit_category", "value": "2"},
                                                     {"shortname": "reportable", "value": "1"}]}
    [(_, created)] = client.create_courses([course]).succeeded
    [got] = client.get_courses_by_field("idnumber", "C-101")
    fields = {f["shortname"]: (f["valueraw"], f["value"]) for f in got["customfields"]}
    assert fields == {"credit_hours": (7.5, "7.5"), "credit_rule": ("", None), "credit_category":
                      (2, "Subject knowledge"), "reportable": (1, "Yes")}
    assert got["categoryid"] == sub["id"] and got["enrollmentmethods"] == ["manual"]
    bad = dict(course, shortname="C-102", idnumber="C-102", customfields=[{"shortname": "credit_hours",
                                                                           "value": "abc"}])
    with pytest.raises(errors.MoodleError) as info:
        client.call("core_course_create_courses", courses=[bad])
    assert info.value.errorcode == "invalidpersistenterror"
    result = client.update_courses([{"id": created["id"], "customfields": [{"shortname": "credit_hours",
                                                                            "value": "10"}]}])
    assert result.ok
    assert client.get_courses_by_field("id", created["id"])[0]["customfields"][0]["value"] == "10.0"
    assert client.get_categories({"id": top["id"]})[1]["coursecount"] == 1


def test_cohorts(client: MoodleClient) -> None:
    ids = [u["id"] for _, u in client.create_users([teacher(11), teacher(12)]).succeeded]
    [(_, cohort)] = client.create_cohorts([{"categorytype": {"type": "system", "value": ""}, "name": "School A",
                                            "idnumber": "S-A"}]).succeeded
    with pytest.raises(errors.MoodleError):
        client.call("core_cohort_create_cohorts", cohorts=[{"categorytype": {"type": "system", "value": ""},
                                                            "name": "dup", "idnumber": "S-A"}])
    result = client.add_cohort_members([
        {"cohorttype": {"type": "idnumber", "value": "S-A"}, "usertype": {"type": "id", "value": ids[0]}},
        {"cohorttype": {"type": "idnumber", "value": "S-A"}, "usertype": {"type": "username", "value": "tch000012"}},
        {"cohorttype": {"type": "idnumber", "value": "S-A"}, "usertype": {"type": "username", "value": "nobody"}}])
    assert len(result.succeeded) == 2 and len(result.failed) == 1
    assert client.get_cohort_members([cohort["id"]]) == [{"cohortid": cohort["id"], "userids": ids}]
    assert [c["idnumber"] for c in client.search_cohorts("S-A")] == ["S-A"]
    client.delete_cohort_members([{"cohortid": cohort["id"], "userid": ids[0]}])
    assert client.get_cohort_members([cohort["id"]])[0]["userids"] == [ids[1]]



def test_cohort_search_pages_as_moodle_does(client: MoodleClient) -> None:
    """core_cohort_search_cohorts hands `limitfrom` to cohort_get_all_cohorts as a page number: the rows start at
    limitfrom * limitnum (cohort/externallib.php, cohort/lib.php), ordered by name."""
    names = [f"PAGED-{n}" for n in range(5)]
    assert client.create_cohorts([{"categorytype": {"type": "system", "value": ""}, "name": n, "idnumber": n}
                                  for n in names]).ok
    def page(limitfrom: int, limitnum: int) -> list[str]:
        answer = client.call("core_cohort_search_cohorts", query="PAGED-", context={"contextid": 1},
                             includes="all", limitfrom=limitfrom, limitnum=limitnum)
        return [c["idnumber"] for c in answer["cohorts"]]
    assert page(0, 2) == names[:2]
    assert page(1, 2) == names[2:4]
    assert page(2, 2) == names[4:]
    assert page(3, 2) == []
    assert page(1, 0) == names  # limitnum 0: everything, whatever the page

def test_enrolment_and_paging(client: MoodleClient) -> None:
    ids = [u["id"] for _, u in client.create_users([teacher(n) for n in range(20, 25)]).succeeded]
    [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "E-1", "categoryid": 1}]).succeeded
    assert client.enrol_users([{"roleid": 5, "userid": i, "courseid": course["id"]} for i in ids]).ok
    assert client.enrol_users([{"roleid": 5, "userid": ids[0], "courseid": course["id"]}]).ok  # twice is harmless
    with pytest.raises(errors.MoodleError) as info:
        client.call("enrol_manual_enrol_users", enrolments=[{"roleid": 5, "userid": 999999, "courseid": course["id"]}])
    assert info.value.errorcode == "invaliduser"
    paged = client.get_enrolled_users(course["id"], page_size=2, userfields=["id", "username"])
    assert [u["id"] for u in paged] == ids and set(paged[0]) == {"id", "username", "fullname"}
    assert [c["id"] for c in client.get_users_courses(ids[0])] == [course["id"]]
    client.unenrol_users([{"userid": ids[0], "courseid": course["id"]}])
    assert [u["id"] for u in client.get_enrolled_users(course["id"])] == ids[1:]


def test_completion_flow_and_admin_endpoints(sandbox_server: Any, client: MoodleClient) -> None:
    [(_, user)] = client.create_users([teacher(30)]).succeeded
    [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "P-1", "idnumber": "P-1",
                                            "categoryid": 1, "enablecompletion": 1}]).succeeded
    client.enrol_users([{"roleid": 5, "userid": user["id"], "courseid": course["id"]}])
    admin = {"wstoken": sandbox_server.token}
    r = requests.post(sandbox_server.url + "/sandbox/admin/course_module", timeout=10,
                      data={**admin, "courseid": course["id"], "modname": "page", "idnumber": "ACT-1", "name": "Read"})
    cmid = r.json()["cmid"]
    with pytest.raises(errors.MoodleError) as info:
        client.get_course_completion_status(course["id"], user["id"])
    assert info.value.errorcode == "nocriteriaset"
    r = requests.post(sandbox_server.url + "/sandbox/admin/completion_criteria", timeout=10,
                      data={**admin, "courseid": course["id"], "cmids": str(cmid)})
    assert r.json()["criteria"] == 1
    r = requests.post(sandbox_server.url + "/sandbox/admin/activity_completion", timeout=10,
                      data={**admin, "userid": user["id"], "cmid": cmid, "completionstate": 1})
    assert r.status_code == 200, r.text
    status = client.get_course_completion_status(course["id"], user["id"])["completionstatus"]
    assert status["completions"][0]["complete"] is True and status["completed"] is False
    r = requests.post(sandbox_server.url + "/sandbox/admin/run_cron", data=admin, timeout=10)
    assert r.json()["completed"] == [{"userid": user["id"], "courseid": course["id"]}]
    assert client.get_course_completion_status(course["id"], user["id"])["completionstatus"]["completed"] is True
    acts = client.get_activities_completion_status(course["id"], user["id"])["statuses"]
    assert [(a["cmid"], a["state"]) for a in acts] == [(cmid, 1)]
    refused = requests.post(sandbox_server.url + "/sandbox/admin/run_cron", data={"wstoken": "nope"}, timeout=10)
    assert refused.status_code == 403


def test_learner_token_acts_on_its_own_user(sandbox_server: Any, client: MoodleClient) -> None:
    [(_, user)] = client.create_users([teacher(40)]).succeeded
    [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "S-1", "categoryid": 1}]).succeeded
    client.enrol_users([{"roleid": 5, "userid": user["id"], "courseid": course["id"]}])
    sandbox_server.state.set_completion_criteria(course["id"], self_completion=True)
    token = requests.post(sandbox_server.url + "/sandbox/admin/token", timeout=10,
                          data={"wstoken": sandbox_server.token, "userid": user["id"]}).json()["token"]
    with MoodleClient.from_url(sandbox_server.url, token, backoff_seconds=0) as learner:
        assert learner.mark_course_self_completed(course["id"])["status"] is True
        with pytest.raises(errors.MoodleError) as info:
            learner.mark_course_self_completed(course["id"])
        assert info.value.errorcode == "useralreadymarkedcomplete"
        with pytest.raises(errors.MoodleError) as info:
            learner.call("core_user_create_users", users=[teacher(41)])
        assert info.value.errorcode == "nopermissions"


def test_three_errors_three_exception_types(sandbox_server: Any, client: MoodleClient) -> None:
    with pytest.raises(errors.InvalidTokenError) as bad_token:
        MoodleClient.from_url(sandbox_server.url, "0123456789abcdef0123456789abcdef").get_site_info()
    with pytest.raises(errors.FunctionNotInServiceError) as outside:
        client.call("core_group_create_groups", groups=[{"courseid": 2, "name": "g1", "description": ""}])
    with pytest.raises(errors.InvalidParameterError) as invalid:
        client.call("core_course_get_contents", courseid="abc")
    assert [e.value.errorcode for e in (bad_token, outside, invalid)] == ["invalidtoken", "accessexception",
                                                                          "invalidparameter"]
    with pytest.raises(errors.UnknownFunctionError):
        client.call("local_nosuch_function")


def test_concurrent_clients_get_distinct_ids(sandbox_server: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(n: int) -> list[int]:
        with MoodleClient.from_url(sandbox_server.url, sandbox_server.token, backoff_seconds=0) as c:
            return [u["id"] for _, u in c.create_users([teacher(1000 + n * 10 + i) for i in range(10)]).succeeded]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(create, range(8)) for i in batch]
    assert sorted(ids) == list(range(3, 3 + 80))


def test_course_contents_and_their_options(sandbox_server: Any, client: MoodleClient) -> None:
    [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "K-1", "categoryid": 1}]).succeeded
    state = sandbox_server.state
    page = state.add_course_module(course["id"], "page", "Read", "ACT-R")
    quiz = state.add_course_module(course["id"], "quiz", "Test", "ACT-Q")
    [general] = client.get_course_contents(course["id"])
    assert [(m["modname"], m["name"]) for m in general["modules"]] == [("forum", "Announcements"), ("page", "Read"),
                                                                        ("quiz", "Test")]
    assert "idnumber" not in general["modules"][1]  # as in Moodle: activity codes are not in the contents
    [only] = client.get_course_contents(course["id"], {"modname": "quiz"})
    assert [m["id"] for m in only["modules"]] == [quiz]
    [bare] = client.get_course_contents(course["id"], {"cmid": page, "excludecontents": 1})
    assert [m["id"] for m in bare["modules"]] == [page] and "contents" not in bare["modules"][0]
    with pytest.raises(errors.RecordNotFoundError):
        client.get_course_contents(999999)
