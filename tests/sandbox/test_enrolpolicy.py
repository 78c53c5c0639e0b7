"""The sandbox's side of the enrolment policy: the plugin's configure_enrolment (capability-checked, hostile
parameters refused), enrol_self limited to a cohort, "Enrol me" (`creditbridge sandbox enrol-me`), the enrol
plugin switch, and welcome messages recorded as a real site sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from site_admin import admin, docs_site

from creditbridge.cli.main import cli
from creditbridge.connector.errors import AccessDeniedError
from creditbridge.connector.functions import CONFIGURE_ENROLMENT_FUNCTION, WELCOME_COURSES_FUNCTION
from creditbridge.connector.moodle import MoodleClient


def _client(server: Any, token: str | None = None) -> MoodleClient:
    return MoodleClient.from_url(server.url, token or server.token, batch_size=50, backoff_seconds=0, retries=0)


def _course_and_cohort(server: Any) -> tuple[int, int, int, int]:
    """A course, a cohort with one member, and a user outside it: (courseid, cohortid, member, outsider)."""
    st = server.state
    client = _client(server)
    course = client.create_courses([{"fullname": "Elective", "shortname": "E1", "idnumber": "E1",
                                     "categoryid": 1}]).succeeded[0][1]["id"]
    cohort = client.create_cohorts([{"categorytype": {"type": "system", "value": ""}, "name": "Audience",
                                     "idnumber": "audience:x"}]).succeeded[0][1]["id"]
    member, outsider = st.create_user("member1"), st.create_user("outsider1")
    st.insert("cohort_members", {"cohortid": cohort, "userid": member, "timeadded": 0})
    return int(course), int(cohort), member, outsider


def _enrol_me(server: Any, *args: str) -> Any:
    return CliRunner().invoke(cli, ["sandbox", "enrol-me", "--url", server.url, "--token", server.token, *args])


def test_configure_opens_the_course_to_the_cohort_only_and_turns_welcome_off(sandbox_server: Any) -> None:
    courseid, cohortid, member, outsider = _course_and_cohort(sandbox_server)
    client = _client(sandbox_server)
    item = {"courseid": courseid, "manualwelcome": 0, "selfcohortid": cohortid, "roleid": 5}
    result = client.configure_enrolment([item])
    assert result.ok and result.succeeded[0][1]["changed"] == 1 and result.succeeded[0][1]["selfid"] > 0
    again = client.configure_enrolment([item])
    assert again.succeeded[0][1] == {**result.succeeded[0][1], "changed": 0}  # idempotent
    assert sandbox_server.state.manual_instance(courseid)["customint1"] == 0

    refused = _enrol_me(sandbox_server, "--userid", str(outsider), "--courseid", str(courseid))
    assert refused.exit_code == 2 and "Only members of cohort 'Audience' can self-enrol" in refused.output
    ok = _enrol_me(sandbox_server, "--userid", str(member), "--courseid", str(courseid), "--json")
    assert ok.exit_code == 0, ok.output and json.loads(ok.stdout)["courseids"] == [courseid]
    assert sandbox_server.state.is_enrolled(courseid, member, active=True)
    twice = _enrol_me(sandbox_server, "--userid", str(member), "--courseid", str(courseid))
    assert twice.exit_code == 2  # already enrolled: Moodle shows no "Enrol me" any more
    assert sandbox_server.state.welcome_messages() == []

    # Closed (cohort 0): nobody new gets in; who is in stays in.
    client.configure_enrolment([{**item, "selfcohortid": 0}])
    sandbox_server.state.insert("cohort_members", {"cohortid": cohortid, "userid": outsider, "timeadded": 0})
    assert _enrol_me(sandbox_server, "--userid", str(outsider), "--courseid", str(courseid)).exit_code == 2
    assert sandbox_server.state.is_enrolled(courseid, member, active=True)


def test_a_self_instance_that_sends_welcome_messages_is_recorded(sandbox_server: Any) -> None:
    """What the sandbox records when an instance does send one (an administrator turned customint4 on)."""
    courseid, cohortid, member, _ = _course_and_cohort(sandbox_server)
    answer = _client(sandbox_server).configure_enrolment([{"courseid": courseid, "selfcohortid": cohortid}])
    sandbox_server.state.update("enrol", answer.succeeded[0][1]["selfid"], {"customint4": 1})
    assert _enrol_me(sandbox_server, "--userid", str(member), "--courseid", str(courseid)).exit_code == 0
    [message] = sandbox_server.state.welcome_messages()
    assert (message["courseid"], message["userid"], message["sendoption"]) == (courseid, member, 1)


@pytest.mark.parametrize(("item", "code"), [
    ({"courseid": 999_999}, "invalidrecord"),
    ({"manualwelcome": 9}, "invalidparameter"),
    ({"roleid": 77}, "invalidrecord"),
    ({"selfcohortid": 888_888}, "invalidrecord"),
])
def test_hostile_items_are_refused_one_by_one(sandbox_server: Any, item: dict[str, Any], code: str) -> None:
    courseid, _, _, _ = _course_and_cohort(sandbox_server)
    good = {"courseid": courseid}
    result = _client(sandbox_server).configure_enrolment([good, {"courseid": courseid, **item}])
    assert [i for i, _ in result.succeeded] == [good]
    [(_, error)] = result.failed
    assert error.errorcode == code


def test_every_capability_is_checked(sandbox_server: Any) -> None:
    courseid, cohortid, _, _ = _course_and_cohort(sandbox_server)
    token = docs_site(sandbox_server)
    for capability in ("moodle/course:enrolconfig", "enrol/manual:config", "enrol/self:config"):
        admin(sandbox_server, "capability", capability=capability, allow=0)
        with pytest.raises(AccessDeniedError) as e:
            _client(sandbox_server, token).configure_enrolment([{"courseid": courseid, "selfcohortid": cohortid}])
        assert e.value.capability == capability
        admin(sandbox_server, "capability", capability=capability, allow=1)
    assert _client(sandbox_server, token).configure_enrolment([{"courseid": courseid, "selfcohortid": cohortid}]).ok



def test_the_welcome_read_names_exactly_the_asked_courses_that_send_one(sandbox_server: Any) -> None:
    """local_creditbridge_get_courses_sending_welcome: a course whose manual instance an administrator turned back
    on is named with its instance and option; a quiet course, a course not asked and a deleted one are not; it
    needs moodle/course:enrolreview; it changes nothing."""
    token = docs_site(sandbox_server)  # every manual instance quiet, as docs/moodle.md sets the site up
    client = _client(sandbox_server, token)
    made = _client(sandbox_server).create_courses([{"fullname": f"C{i}", "shortname": f"C{i}", "idnumber": f"C{i}",
                                                     "categoryid": 1} for i in range(3)])
    quiet, turned_on, not_asked = (int(answer["id"]) for _, answer in made.succeeded)
    st = sandbox_server.state
    admin(sandbox_server, "welcome", sendoption=2, scope="instances", courseid=turned_on)
    admin(sandbox_server, "welcome", sendoption=1, scope="instances", courseid=not_asked)
    manual = st.manual_instance(turned_on)
    writes = client.write_calls
    assert client.get_courses_sending_welcome([quiet, turned_on, turned_on, 515151]) == [
        {"courseid": turned_on, "manualid": manual["id"], "welcome": 2}]
    assert client.write_calls == writes and st.manual_instance(turned_on)["customint1"] == 2
    st.update("enrol", manual["id"], {"status": 1})  # disabled: enrol_manual_enrol_users cannot enrol through it
    assert client.get_courses_sending_welcome([turned_on]) == []

    admin(sandbox_server, "capability", capability="moodle/course:enrolreview", allow=0)
    with pytest.raises(AccessDeniedError) as e:
        client.get_courses_sending_welcome([quiet])
    assert e.value.capability == "moodle/course:enrolreview"


def test_self_enrolment_gives_only_a_role_the_token_user_may_assign(sandbox_server: Any) -> None:
    """Hostile review: roleid was only checked to exist, so a token whose role may assign only students
    (docs/moodle.md's creditbridge role) could open a course's self enrolment as manager: every audience member
    clicking "Enrol me" became a manager of the course. Moodle's own enrolment paths (enrol_manual_enrol_users,
    enrol_self's edit form) offer only get_assignable_roles($context); the plugin refuses the rest the same way."""
    courseid, cohortid, member, _ = _course_and_cohort(sandbox_server)
    token = docs_site(sandbox_server)
    result = _client(sandbox_server, token).configure_enrolment([
        {"courseid": courseid, "selfcohortid": cohortid, "roleid": 1}])
    [(_, error)] = result.failed
    assert error.errorcode == "wsusercannotassign"
    assert sandbox_server.state.scalar("SELECT COUNT(*) FROM enrol WHERE courseid = ? AND name = 'creditbridge'",
                                       courseid) == 0
    assert _enrol_me(sandbox_server, "--userid", str(member), "--courseid", str(courseid)).exit_code == 2
    # the role it may assign still works
    assert _client(sandbox_server, token).configure_enrolment([{"courseid": courseid, "selfcohortid": cohortid,
                                                                "roleid": 5}]).ok

def test_disabled_enrol_self_is_a_clear_error(sandbox_server: Any) -> None:
    courseid, cohortid, _, _ = _course_and_cohort(sandbox_server)
    off = CliRunner().invoke(cli, ["sandbox", "site", "--url", sandbox_server.url, "--token", sandbox_server.token,
                                   "--enrol-plugin", "self=off", "--json"])
    assert off.exit_code == 0, off.output and json.loads(off.stdout)[0]["enabled"] is False
    result = _client(sandbox_server).configure_enrolment([{"courseid": courseid, "selfcohortid": cohortid}])
    [(_, error)] = result.failed
    assert error.errorcode == "enrolselfdisabled" and "Manage enrol plugins" in error.message
    # Only what needs enrol_self is refused: turning a course's welcome message off still works.
    assert _client(sandbox_server).configure_enrolment([{"courseid": courseid}]).ok


@pytest.mark.parametrize("args", [[], ["--courseid", "1", "--all-open"]])
def test_enrol_me_wants_exactly_one_target(sandbox_server: Any, args: list[str]) -> None:
    result = _enrol_me(sandbox_server, "--userid", "2", *args)
    assert result.exit_code == 2 and "exactly one of --courseid or --all-open" in result.output


@pytest.mark.parametrize("spec", ["self", "self=maybe", "=on"])
def test_a_broken_enrol_plugin_switch_is_refused(sandbox_server: Any, spec: str) -> None:
    result = CliRunner().invoke(cli, ["sandbox", "site", "--url", sandbox_server.url, "--token", sandbox_server.token,
                                      "--enrol-plugin", spec])
    assert result.exit_code == 2, result.output


def test_admin_endpoints_refuse_unknown_users_courses_and_tokens(sandbox_server: Any) -> None:
    url = f"{sandbox_server.url}/sandbox/admin/self_enrol"
    assert requests.post(url, data={"wstoken": "nope", "userid": 2, "courseid": 1}, timeout=10).status_code == 403
    r = requests.post(url, data={"wstoken": sandbox_server.token, "userid": 424242, "courseid": 1}, timeout=10)
    assert r.status_code == 404 and "no user" in r.json()["error"]
    r = requests.post(url, data={"wstoken": sandbox_server.token, "userid": 2, "courseid": 515151}, timeout=10)
    assert r.status_code == 404 and "no course" in r.json()["error"]
    r = requests.post(url, data={"wstoken": sandbox_server.token, "userid": "x", "courseid": 1}, timeout=10)
    assert r.status_code == 400
    r = requests.post(f"{sandbox_server.url}/sandbox/admin/enrol_plugin",
                      data={"wstoken": sandbox_server.token, "name": "paypal", "enabled": 1}, timeout=10)
    assert r.status_code == 400


def test_the_function_is_in_the_service_and_its_version_is_the_plugins(sandbox_server: Any) -> None:
    functions = {f["name"]: f["version"] for f in _client(sandbox_server).get_site_info()["functions"]}
    assert functions[CONFIGURE_ENROLMENT_FUNCTION] == functions[WELCOME_COURSES_FUNCTION] == "2026120603"


def test_cohort_sync_enrols_members_as_they_join_and_unenrols_them_as_they_leave(sandbox_server: Any) -> None:
    courseid, cohortid, member, outsider = _course_and_cohort(sandbox_server)
    admin(sandbox_server, "cohort_sync", courseid=courseid, cohortid=cohortid)
    st = sandbox_server.state
    assert st.is_enrolled(courseid, member, active=True) and not st.is_enrolled(courseid, outsider)
    client = _client(sandbox_server)
    assert client.add_cohort_members([{"cohorttype": {"type": "id", "value": cohortid},
                                       "usertype": {"type": "id", "value": outsider}}]).ok
    assert st.is_enrolled(courseid, outsider, active=True)
    assert st.welcome_messages() == []  # enrol_cohort sends none
    assert client.delete_cohort_members([{"cohortid": cohortid, "userid": outsider}]).ok
    assert not st.is_enrolled(courseid, outsider)
    r = requests.post(f"{sandbox_server.url}/sandbox/admin/cohort_sync",
                      data={"wstoken": sandbox_server.token, "courseid": courseid, "cohortid": 4242}, timeout=10)
    assert r.status_code == 404 and "no cohort" in r.json()["error"]
