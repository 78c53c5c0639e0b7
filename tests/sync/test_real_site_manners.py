"""Issue 13: sync against a site with the real Moodle's manners (shared/fixtures/moodle-ws/roles.json,
enrol facts in its README): refused course updates, a blind e-mail pre-check, profile fields the site
lacks, welcome messages that cannot be sent. Each test runs `creditbridge sync ...` through the CLI
against the sandbox, with the functions whose real answers differ replaced by the recorded ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from recorded_site import item_ids, recorded, recorded_site, without_email
from sync_helpers import (
    CATALOG_HEADER,
    Env,
    client_for,
    enrolled_codes,
    make_env,
    people,
    sandbox_users,
    stored_teachers,
    write_csv,
    write_roster,
)

from creditbridge.i18n import words

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, db_url: str) -> Env:
    return make_env(tmp_path, sandbox, db_url)


def _course(code: str, title: str) -> list[object]:
    return [code, title, "required", "ethics", "online", 2, "", "", "", ""]


def _refuse_every_course(fields: dict[str, str], forward: Any) -> str:
    """core_course_update_courses as the docs' role gets it (roles.json[5]): one nopermissions warning per
    course, nothing changed (the sandbox is not asked at all)."""
    warning = json.loads(recorded("roles", 5)["response"]["body"])["warnings"][0]
    return json.dumps({"warnings": [{**warning, "itemid": int(i)} for i in item_ids(fields, "courses")]})


def test_refused_course_updates_are_row_errors_and_retried_next_sync(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    first = [_course("ETH-1", "师德一"), _course("ETH-2", "师德二"), _course("ETH-3", "师德三")]
    assert env.sync(runner, "catalog", write_csv(tmp_path / "c1.csv", CATALOG_HEADER, first))["created"] == 3
    renamed = [_course("ETH-1", "师德一（2026修订）"), _course("ETH-2", "师德二"), _course("ETH-3", "师德三（修订）")]
    c2 = write_csv(tmp_path / "c2.csv", CATALOG_HEADER, renamed)

    with recorded_site(sandbox.url, {"core_course_update_courses": _refuse_every_course}) as site:
        out = env.sync(runner, "catalog", c2)
    assert site.calls.count("core_course_update_courses") == 1
    assert out["updated"] == 0 and out["unchanged"] == 1
    by_row = {e["row"]: e for e in out["errors"]}
    assert set(by_row) == {2, 4}
    for row, code in ((2, "ETH-1"), (4, "ETH-3")):
        reason = by_row[row]["reason"]
        assert code in reason and "[nopermissions]" in reason and "Change course full name" in reason
        assert "moodle/course:changefullname" in reason  # what the administrator has to grant
    sheet = load_workbook(out["report"], read_only=True)[ZH("sync.sheet.errors")]
    assert {r[0] for r in sheet.iter_rows(min_row=2, values_only=True)} == {2, 4}
    client = client_for(sandbox)
    assert client.get_courses_by_field("idnumber", "ETH-1")[0]["fullname"] == "师德一"

    # The store must not claim the refused courses were updated: the next sync sends them again.
    again = env.sync(runner, "catalog", c2)
    assert again["updated"] == 2 and again["errors"] == []
    assert client.get_courses_by_field("idnumber", "ETH-1")[0]["fullname"] == "师德一（2026修订）"
    assert env.sync(runner, "catalog", c2)["lms_calls"] == 0


def test_a_warning_naming_no_course_of_the_call_is_an_error_of_the_run(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    env.sync(runner, "catalog", write_csv(tmp_path / "c1.csv", CATALOG_HEADER,
                                          [_course("ETH-1", "一"), _course("ETH-2", "二")]))
    stray = {"item": "course", "itemid": 999999, "warningcode": "unknowncourseidnumber",
             "message": "Unknown course idnumber"}

    def update_then_warn(fields: dict[str, str], forward: Any) -> str:
        answer = json.loads(forward())
        return json.dumps({"warnings": [*answer["warnings"], stray]})

    with recorded_site(sandbox.url, {"core_course_update_courses": update_then_warn}):
        out = env.sync(runner, "catalog", write_csv(tmp_path / "c2.csv", CATALOG_HEADER,
                                                    [_course("ETH-1", "一（修订）"), _course("ETH-2", "二（修订）")]))
    assert out["updated"] == 2
    (error,) = out["errors"]
    assert error["row"] is None and "Moodle warned" in error["reason"] and "Unknown course idnumber" in error["reason"]


# What enrol_manual_enrol_users answers, after saving, where the welcome mail cannot be sent (moodle-ws/README.md).
MAIL_FAILED = json.dumps({"exception": "core\\exception\\moodle_exception", "errorcode": "Message was not sent.",
                          "message": "error/Message was not sent."})


def test_enrolments_saved_before_the_welcome_mail_failed_are_not_failures(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    env.sync(runner, "catalog", write_csv(tmp_path / "c.csv", CATALOG_HEADER,
                                          [_course("ETH-1", "师德一"), _course("ETH-2", "师德二")]))
    staff = people(3)
    roster = write_roster(tmp_path / "r.csv", staff)

    def save_then_fail_mail(fields: dict[str, str], forward: Any) -> str:
        assert forward() == "null"  # the sandbox saved the enrolments
        return MAIL_FAILED

    with recorded_site(sandbox.url, {"enrol_manual_enrol_users": save_then_fail_mail}) as site:
        out = env.sync(runner, "roster", roster)
    assert out["created"] == 3 and out["errors"] == []
    # 6 enrolments in batches of 4 (teachers 1+2, then 3): two calls, each read back once per teacher in it,
    # never halved or resent
    assert site.calls.count("enrol_manual_enrol_users") == 2
    assert site.calls.count("core_enrol_get_users_courses") == 3
    notes = _notes(out["report"])
    assert any("welcome message" in n and "docs/moodle.md" in n for n in notes)
    client = client_for(sandbox)
    users = sandbox_users(client, [t.username for t in stored_teachers(env).values()])
    for user in users.values():
        assert enrolled_codes(client, user["id"]) == {"ETH-1", "ETH-2"}
    again = env.sync(runner, "roster", roster)  # the store recorded the enrolments exactly: nothing to resend
    assert again["lms_calls"] == 0 and again["errors"] == []


@pytest.mark.parametrize("courses", ['[{"shortname": "no id"}]', '{"not": "a list"}', '[null]'])
def test_a_broken_read_back_after_the_mail_failure_stops_the_run_clearly(
        courses: str, tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    env.sync(runner, "catalog", write_csv(tmp_path / "c.csv", CATALOG_HEADER, [_course("ETH-1", "师德一")]))
    overrides = {"enrol_manual_enrol_users": lambda fields, forward: (forward(), MAIL_FAILED)[1],
                 "core_enrol_get_users_courses": lambda fields, forward: courses}
    with recorded_site(sandbox.url, overrides):
        out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", people(2)), expect=1)
    assert out["created"] == 2  # the accounts are recorded; the enrolments are left for the next run
    (error,) = [e for e in out["errors"] if e["row"] is None]
    assert "run stopped" in error["reason"] and "core_enrol_get_users_courses" in error["reason"]
    assert "unexpected answer" in error["reason"]
    again = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", people(2)))
    assert again["errors"] == [] and again["lms_calls"] > 0  # the enrolments are sent again, and go through


def test_an_enrolment_moodle_did_not_save_is_still_a_failure(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    env.sync(runner, "catalog", write_csv(tmp_path / "c.csv", CATALOG_HEADER, [_course("ETH-1", "师德一")]))
    with recorded_site(sandbox.url, {"enrol_manual_enrol_users": lambda fields, forward: MAIL_FAILED}):
        out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", people(2)))
    assert out["created"] == 2
    assert sorted(e["row"] for e in out["errors"]) == [2, 3]
    assert all("ETH-1" in e["reason"] and "Message was not sent." in e["reason"] for e in out["errors"])


def test_an_email_in_use_in_other_letter_case_is_one_clear_error_not_a_halved_batch(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    client = client_for(sandbox)
    other = client.create_users([{"username": "other1", "password": "Teach#2024a", "firstname": "O", "lastname": "T",
                                  "email": "tch1@example.org"}]).succeeded[0][1]["id"]
    staff = people(4)
    staff = [staff[0].moved(email="TCH1@Example.org"), staff[1].moved(email="b@example.org"),
             staff[2].moved(email="Dup@Example.org"), staff[3].moved(email="dup@example.org")]
    with recorded_site(sandbox.url, {}) as site:
        out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    assert out["created"] == 2
    errors = {e["row"]: e for e in out["errors"]}
    assert set(errors) == {2, 5} and {e["column"] for e in errors.values()} == {"邮箱"}
    assert f"email already used by Moodle user id {other}" in errors[2]["reason"]
    assert "rows 4 and 5" in errors[5]["reason"] and "letter case" in errors[5]["reason"]
    assert site.calls.count("core_user_create_users") == 1  # nothing refused by Moodle, nothing halved
    created = sandbox_users(client, [t.username for t in stored_teachers(env).values()])
    assert sorted(u["email"] for u in created.values()) == ["b@example.org", "dup@example.org"]


def _blind_lookups(fields: dict[str, str], forward: Any) -> str:
    """core_user_get_users_by_field as the docs' role without moodle/site:viewuseridentity (roles.json[2], [3])."""
    if fields.get("field") == "email":
        return recorded("roles", 2)["response"]["body"]  # []
    return without_email(forward())


def test_a_blind_precheck_ends_in_an_error_naming_the_email_and_the_capability(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    client_for(sandbox).create_users([{"username": "other9", "password": "Teach#2024a", "firstname": "O",
                                       "lastname": "T", "email": "Tch9@Example.org"}])
    staff = people(4)
    staff[2] = staff[2].moved(email="tch9@example.org")
    with recorded_site(sandbox.url, {"core_user_get_users_by_field": _blind_lookups}) as site:
        out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    assert out["created"] == 3
    (error,) = out["errors"]
    assert error["row"] == 4 and error["column"] == "邮箱"
    assert "e-mail address is most likely used by another Moodle account" in error["reason"]
    assert "moodle/site:viewuseridentity" in error["reason"]
    # one batch of 4 refused, then halved to the culprit: bounded, 1 + 2 + 2 calls
    assert site.calls.count("core_user_create_users") == 5


def test_a_lookup_without_email_says_once_that_the_precheck_is_blind(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    with recorded_site(sandbox.url, {"core_user_get_users_by_field": _blind_lookups}):
        out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", people(6)))  # two create batches
    assert out["created"] == 6 and out["errors"] == []
    notes = _notes(out["report"])
    blind = [n for n in notes if "pre-check is blind" in n]
    assert len(blind) == 1 and "moodle/site:viewuseridentity" in blind[0]
    with recorded_site(sandbox.url, {}):  # with the capability: no such note
        again = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", [*people(6), *people(1, start=20)]))
    notes = _notes(again["report"])
    assert again["created"] == 1 and not any("pre-check is blind" in str(n) for n in notes)


def _notes(report: str) -> list[str]:
    summary = load_workbook(report, read_only=True)[ZH("sync.sheet.summary")]  # the default language, zh-CN
    return [str(v) for k, v in summary.iter_rows(min_row=2, values_only=True) if k == ZH("sync.note")]


def test_profile_fields_the_site_lacks_are_named_and_filled_once_added(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    # The site set up by the docs' old list: no school, county or city profile field (roles.json[16]: Moodle
    # then accepts the values and drops them without a word).
    sandbox.state.execute("DELETE FROM user_info_field WHERE shortname IN ('school', 'county', 'city')")
    staff = people(3)
    roster = write_roster(tmp_path / "r.csv", staff)
    out = env.sync(runner, "roster", roster)
    assert out["created"] == 3 and out["errors"] == []
    missing = [n for n in _notes(out["report"]) if "not stored by the site" in n]
    assert len(missing) == 1 and "city, county, school" in missing[0] and "User profile fields" in missing[0]

    again = env.sync(runner, "roster", roster)  # still missing: said again, and nothing else is sent
    assert again["updated"] == 0 and len([n for n in _notes(again["report"]) if "city, county, school" in n]) == 1
    assert again["lms_calls"] == 1  # the one write that tries the missing fields on one account
    shown = env.run(runner, "sync", "roster", str(roster))  # as an operator sees it on a terminal
    assert shown.exit_code == 0 and "note: profile field(s) city, county, school not stored" in shown.stderr

    for short, name in (("school", "School"), ("county", "County"), ("city", "City")):
        sandbox.state.add_profile_field(short, name, "text")
    filled = env.sync(runner, "roster", roster)
    assert filled["updated"] == 3 and filled["errors"] == []
    assert not any("not stored by the site" in n for n in _notes(filled["report"]))
    client = client_for(sandbox)
    users = sandbox_users(client, [t.username for t in stored_teachers(env).values()])
    for user in users.values():
        fields = {f["shortname"]: f["value"] for f in user["customfields"]}
        assert (fields["school"], fields["county"], fields["city"]) == ("济南市历下区第一中学", "历下区", "济南市")
    quiet = env.sync(runner, "roster", roster)
    assert quiet["lms_calls"] == 0 and quiet["updated"] == 0 and quiet["unchanged"] == 3
