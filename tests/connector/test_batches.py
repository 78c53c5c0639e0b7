"""Bulk writes: batching, halving a refused batch to isolate bad records, and the create_users pre-check."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from creditbridge.connector import errors
from creditbridge.connector.encoding import decode_params
from creditbridge.connector.moodle import MoodleClient

URL = "http://moodle.test"
ENDPOINT = URL + "/webservice/rest/server.php"
INVALID = {"exception": "core\\exception\\invalid_parameter_exception", "errorcode": "invalidparameter",
           "message": "Invalid parameter value detected"}


class FakeMoodle:
    """Production-like answers: one transaction per call, `invalidparameter` naming nobody."""

    def __init__(self, existing: list[dict[str, Any]] | None = None, bad: set[str] = frozenset()) -> None:
        self.users: list[dict[str, Any]] = list(existing or [])
        self.bad = bad
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        form = decode_params(parse_qsl(request.body))
        function = form["wsfunction"]
        self.calls.append((function, form))
        if function == "core_user_get_users_by_field":
            values = set(form.get("values", []))
            found = [u for u in self.users if str(u.get(form["field"])) in values]
            return 200, {}, json.dumps(found)
        if function == "core_user_create_users":
            batch = form["users"]
            if any(u["username"] in self.bad for u in batch):
                return 200, {}, json.dumps(INVALID)
            created = []
            for u in batch:
                u = {**u, "id": 100 + len(self.users)}
                self.users.append(u)
                created.append({"id": u["id"], "username": u["username"]})
            return 200, {}, json.dumps(created)
        raise AssertionError(function)

    def creates(self) -> int:
        return sum(1 for f, _ in self.calls if f == "core_user_create_users")


def _user(n: int, **extra: Any) -> dict[str, Any]:
    return {"username": f"t{n:04d}", "firstname": "F", "lastname": f"L{n}", "email": f"t{n:04d}@example.org",
            "idnumber": f"ID{n}", "auth": "manual", "password": "Xx#12345", **extra}


@pytest.fixture
def moodle() -> Any:
    with responses.RequestsMock() as rsps:
        fake = FakeMoodle(bad={"t0006"})
        rsps.add_callback(responses.POST, ENDPOINT, callback=fake, content_type="application/json")
        yield fake


def test_bad_user_is_isolated_and_the_other_eight_are_created(moodle: FakeMoodle) -> None:
    client = MoodleClient.from_url(URL, "tok", batch_size=100)
    result = client.create_users([_user(n) for n in range(1, 10)])
    assert [u["username"] for u, _ in result.failed] == ["t0006"]
    error = result.failed[0][1]
    assert isinstance(error, errors.InvalidParameterError) and error.errorcode == "invalidparameter"
    assert sorted(u["username"] for u, _ in result.succeeded) == [f"t{n:04d}" for n in range(1, 10) if n != 6]
    assert all(answer["id"] >= 100 for _, answer in result.succeeded)
    assert len(moodle.users) == 8
    # One failed call, then one refused call per level down to the bad record: about 2*log2(n).
    assert moodle.creates() <= 2 * math.ceil(math.log2(9)) + 1
    assert client.write_calls == moodle.creates()


def test_split_is_logarithmic_for_a_large_batch(moodle: FakeMoodle) -> None:
    client = MoodleClient.from_url(URL, "tok", batch_size=500)
    users = [_user(n) for n in range(1, 257)]
    result = client.create_users(users, precheck=False)
    assert len(result.succeeded) == 255 and len(result.failed) == 1
    assert moodle.creates() <= 2 * 8 + 1


def test_batches_of_configured_size(moodle: FakeMoodle) -> None:
    client = MoodleClient.from_url(URL, "tok", batch_size=4)
    moodle.bad = set()
    result = client.create_users([_user(n) for n in range(1, 11)])
    assert result.ok and len(result.succeeded) == 10
    sizes = [len(form["users"]) for f, form in moodle.calls if f == "core_user_create_users"]
    assert sizes == [4, 4, 2]


def test_existing_and_repeated_users_are_reported_without_sending() -> None:
    existing = [{"id": 5, "username": "t0001", "email": "x@example.org", "idnumber": "OLD"},
                {"id": 6, "username": "other", "email": "t0002@example.org", "idnumber": "X"},
                {"id": 7, "username": "other2", "email": "y@example.org", "idnumber": "ID3"}]
    fake = FakeMoodle(existing=existing)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, callback=fake, content_type="application/json")
        client = MoodleClient.from_url(URL, "tok")
        users = [_user(1), _user(2), _user(3), _user(4), _user(5, email="t0004@example.org")]
        result = client.create_users(users)
    failed = {u["username"]: e for u, e in result.failed}
    assert {k: (type(e), e.errorcode) for k, e in failed.items()} == {
        "t0001": (errors.DuplicateError, "usernameexists"),
        "t0002": (errors.DuplicateError, "emailexists"),
        "t0003": (errors.DuplicateError, "idnumbertaken"),
        "t0005": (errors.DuplicateError, "emailexists"),
    }
    sent = [u["username"] for f, form in fake.calls if f == "core_user_create_users" for u in form["users"]]
    assert sent == ["t0004"]
    lookups = [form["field"] for f, form in fake.calls if f == "core_user_get_users_by_field"]
    assert lookups == ["username", "idnumber", "email"]


def test_form_field_limit_splits_before_sending(moodle: FakeMoodle) -> None:
    moodle.bad = set()
    client = MoodleClient.from_url(URL, "tok", batch_size=500, max_form_fields=50)
    result = client.create_users([_user(n) for n in range(1, 21)], precheck=False)
    assert result.ok and len(result.succeeded) == 20
    sizes = [len(form["users"]) for f, form in moodle.calls if f == "core_user_create_users"]
    assert max(sizes) * 7 + 3 <= 50 and sum(sizes) == 20


def test_whole_call_error_stops_the_bulk_write_and_keeps_what_went_through() -> None:
    bodies = iter([json.dumps([{"id": 1, "username": "t0001"}]),
                   json.dumps({"exception": "webservice_access_exception", "errorcode": "accessexception",
                               "message": "Access control exception"})])
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, callback=lambda r: (200, {}, next(bodies)))
        client = MoodleClient.from_url(URL, "tok", batch_size=1)
        with pytest.raises(errors.FunctionNotInServiceError) as info:
            client.create_users([_user(1), _user(2)], precheck=False)
        assert len(rsps.calls) == 2  # not split: halving cannot help
    assert [u["username"] for u, _ in info.value.partial.succeeded] == ["t0001"]


def test_update_warnings_become_per_item_failures() -> None:
    body = {"warnings": [{"item": "user", "itemid": 999999, "warningcode": "invaliduserid",
                          "message": "Invalid user ID"}]}
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, json=body)
        result = MoodleClient.from_url(URL, "tok").update_users([{"id": 5, "lastname": "A"},
                                                                 {"id": 999999, "lastname": "B"}])
    assert [u["id"] for u, _ in result.succeeded] == [5]
    assert isinstance(result.failed[0][1], errors.RecordNotFoundError)
    assert result.failed[0][1].errorcode == "invaliduserid"


@pytest.mark.parametrize("warning", [
    {"item": "course", "itemid": 77, "warningcode": "nopermissions",
     "message": "Sorry, but you do not currently have permissions to do that (Change course full name)."},
    {"item": "category", "itemid": 14, "warningcode": "nopermissions", "message": "Sorry (Change course category)."},
    {"warningcode": "unknown", "message": "something Moodle did not tie to a record"},
])
def test_a_warning_naming_no_item_of_the_call_is_kept_not_dropped(warning: dict[str, Any]) -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, json={"warnings": [warning]})
        result = MoodleClient.from_url(URL, "tok").update_courses([{"id": 14, "fullname": "A"},
                                                                   {"id": 15, "fullname": "B"}])
    assert [c["id"] for c, _ in result.succeeded] == [14, 15]
    assert [(w.errorcode, w.message) for w in result.warnings] == [(warning["warningcode"], warning["message"])]
    assert result.as_json()["warnings"][0]["message"] == warning["message"]


def test_a_call_of_one_record_owns_any_warning() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, json={"warnings": [{"warningcode": "unknown", "message": "not tied to a record"}]})
        result = MoodleClient.from_url(URL, "tok").update_courses([{"id": 14, "fullname": "A"}])
    assert not result.succeeded and not result.warnings
    assert [(c["id"], e.errorcode) for c, e in result.failed] == [(14, "unknown")]


def test_nopermissions_names_the_capability_to_grant() -> None:
    body = {"warnings": [{"item": "course", "itemid": 14, "warningcode": "nopermissions",
                          "message": "Sorry, but you do not currently have permissions to do that (Change course "
                                     "category)."}]}
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, json=body)
        result = MoodleClient.from_url(URL, "tok").update_courses([{"id": 14, "categoryid": 4}])
    (_, error), = result.failed
    assert isinstance(error, errors.AccessDeniedError) and error.capability == "moodle/course:changecategory"


def test_cohort_member_warnings_name_the_member() -> None:
    body = {"warnings": [{"warningcode": "2", "message": "user username=nosuchuser not exists"}]}
    members = [{"cohorttype": {"type": "idnumber", "value": "SC-1"}, "usertype": {"type": "username", "value": "a"}},
               {"cohorttype": {"type": "idnumber", "value": "SC-1"},
                "usertype": {"type": "username", "value": "nosuchuser"}}]
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, json=body)
        result = MoodleClient.from_url(URL, "tok").add_cohort_members(members)
    assert len(result.succeeded) == 1
    assert result.failed[0][0]["usertype"]["value"] == "nosuchuser"


@pytest.mark.parametrize("applied", [True, False])
def test_create_users_after_a_timeout_checks_before_resending(applied: bool) -> None:
    """A create that failed with a 503 is never blindly repeated: lookup first, resend only the missing."""
    fake = FakeMoodle()
    first = [True]

    def flaky(request: Any) -> tuple[int, dict[str, str], str]:
        form = decode_params(parse_qsl(request.body))
        if form["wsfunction"] == "core_user_create_users" and first[0]:
            first[0] = False
            if applied:
                fake(request)  # Moodle did the work, the answer got lost
            return 503, {}, "Service Unavailable"
        return fake(request)

    sleeps: list[float] = []
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, callback=flaky, content_type="application/json")
        client = MoodleClient.from_url(URL, "tok", backoff_seconds=0.01, sleep=sleeps.append)
        result = client.create_users([_user(1), _user(2), _user(3)], precheck=False)
        create_requests = sum(1 for c in rsps.calls if "core_user_create_users" in c.request.body)
    assert result.ok and sorted(u["username"] for u, _ in result.succeeded) == ["t0001", "t0002", "t0003"]
    assert len(fake.users) == 3  # nobody created twice
    assert create_requests == (1 if applied else 2)  # resent only when the lookup found nobody
    assert len(sleeps) == 1


def test_other_writes_are_not_resent_after_a_timeout() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(ENDPOINT, status=503)
        client = MoodleClient.from_url(URL, "tok", backoff_seconds=0)
        with pytest.raises(errors.TransientError) as info:
            client.enrol_users([{"roleid": 5, "userid": 3, "courseid": 2}])
        assert len(rsps.calls) == 1
    assert info.value.partial is not None and info.value.partial.succeeded == []


def test_recorded_blind_lookups_and_the_refused_create_give_one_clear_error() -> None:
    """roles.json: the docs' role finds no account by e-mail ([2]), a username lookup lacks `email` ([3]), and a
    create with an address in use is the bare invalidparameter ([8])."""
    from moodle_ws_fixtures import ws_calls

    roles = {key: entry for key, entry in ws_calls() if key.startswith("roles[")}

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        fields = dict(parse_qsl(request.body))
        if fields["wsfunction"] == "core_user_create_users":
            if fields["users[0][username]"] == "tch100004":
                return 200, {}, roles["roles[8]"]["response"]["body"]
            return 200, {}, json.dumps([{"id": 7000, "username": fields["users[0][username]"]}])
        if fields["field"] == "email":
            return 200, {}, roles["roles[2]"]["response"]["body"]
        if fields.get("values[0]") == "tch100001":
            return 200, {}, roles["roles[3]"]["response"]["body"]
        return 200, {}, "[]"

    client = MoodleClient.from_url(URL, "tok", batch_size=1)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, ENDPOINT, callback=answer, content_type="application/json")
        first = client.create_users([{"username": "tch100001", "email": "tch100001@example.org"}])
        assert client.email_visible is False and first.notes and "moodle/site:viewuseridentity" in first.notes[0]
        result = client.create_users([{"username": "tch100004", "email": "TCH100001@example.org"}])
        sent = [dict(parse_qsl(c.request.body)) for c in rsps.calls]
    (_, error), = result.failed
    assert error.errorcode == "invalidparameter"
    assert "most likely used by another Moodle account" in error.message and "viewuseridentity" in error.message
    looked_up = {v for f in sent if f.get("field") == "email" for k, v in f.items() if k.startswith("values")}
    assert looked_up >= {"TCH100001@example.org", "tch100001@example.org"}  # as given and in lower case
