"""`creditbridge moodle check` tells a site's readiness: a sandbox site set up as docs/moodle.md says is ready;
each gap (capability, profile field, course field, welcome messages, blocked receiver) is named with its fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask, Response, request
from site_admin import admin, docs_site, ws

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.cli.main import cli
from creditbridge.connector.functions import (
    CONFIGURE_ENROLMENT_FUNCTION,
    READINESS_FUNCTION,
    REQUIRED_CAPABILITIES,
    REQUIRED_FUNCTIONS,
    WELCOME_COURSES_FUNCTION,
    WELCOME_COURSES_SINCE,
)
from creditbridge.connector.readiness import function_findings
from creditbridge.settings.model import SyncSettings


@pytest.fixture
def cli_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    config = tmp_path / "creditbridge.toml"
    config.write_text("[moodle]\nretries = 1\nbackoff_seconds = 0\ntimeout_seconds = 5\n", encoding="utf-8")
    monkeypatch.setenv("CREDITBRIDGE_CONFIG", str(config))
    return CliRunner()


def check(runner: CliRunner, server: Any, token: str, *args: str) -> Result:
    return runner.invoke(cli, ["moodle", "check", *args],
                         env={"CREDITBRIDGE_MOODLE_URL": server.url, "CREDITBRIDGE_MOODLE_TOKEN": token})


def findings(result: Result) -> list[dict[str, str]]:
    return json.loads(result.stdout)["findings"]


def only(result: Result, code: str) -> dict[str, str]:
    found = [f for f in findings(result) if f["code"] == code]
    assert len(found) == 1, findings(result)
    assert set(found[0]) == {"code", "severity", "message", "fix"}
    return found[0]


def test_a_site_set_up_as_the_docs_say_is_ready(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ready"] and report["readiness_checked"] and report["findings"] == []
    assert report["user"]["username"] == "creditbridge"
    human = check(cli_runner, sandbox_server, token)
    assert human.exit_code == 0 and "Ready." in human.stdout


@pytest.mark.parametrize("capability", ["moodle/course:changefullname", "moodle/course:changecategory",
                                        "moodle/course:changesummary", "moodle/site:viewuseridentity",
                                        "enrol/manual:enrol", "report/completion:view"])
def test_each_missing_capability_is_named_with_its_fix(sandbox_server: Any, cli_runner: CliRunner,
                                                       capability: str) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "capability", capability=capability, allow=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1, result.output
    f = only(result, "capability_missing")
    assert f["severity"] == "error" and capability in f["message"] and "creditbridge" in f["message"]
    assert f["fix"].startswith("Site administration > Users > Permissions > Define roles")
    assert f["fix"].endswith(f"allow {capability}")
    assert not json.loads(result.stdout)["ready"]


@pytest.mark.parametrize(("shortname", "kind"), [("school", "Text input"), ("county", "Text input"),
                                                 ("stage", "Drop-down menu"), ("rural", "Checkbox")])
def test_each_missing_profile_field_is_named_with_its_fix(sandbox_server: Any, cli_runner: CliRunner,
                                                          shortname: str, kind: str) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "profile_field", shortname=shortname, action="remove")
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1, result.output
    f = only(result, "profile_field_missing")
    assert shortname in f["message"]
    assert f["fix"] == ("Site administration > Users > Accounts > User profile fields > Create a new profile field: "
                        f"{kind}, short name {shortname}")


def test_profile_fields_are_the_ones_the_settings_name(sandbox_server: Any, cli_runner: CliRunner,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site whose school field is called `schoolname`: the settings say so, and check asks for that one."""
    config = tmp_path / "renamed.toml"
    config.write_text("[moodle]\nretries = 1\n[sync.profile_fields]\nschool = \"schoolname\"\n", encoding="utf-8")
    monkeypatch.setenv("CREDITBRIDGE_CONFIG", str(config))
    token = docs_site(sandbox_server)
    f = only(check(cli_runner, sandbox_server, token, "--json"), "profile_field_missing")
    assert "schoolname" in f["message"] and "roster school" in f["message"]
    admin(sandbox_server, "profile_field", shortname="schoolname", action="add", datatype="text")
    assert check(cli_runner, sandbox_server, token).exit_code == 0


def test_missing_course_field_is_named_with_its_fix(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "course_field", shortname="credit_hours", action="remove")
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "course_field_missing")
    assert "credit_hours" in f["message"]
    assert f["fix"].startswith("Site administration > Courses > Course custom fields > Add a new custom field: Number")


def test_welcome_message_default_is_named_with_the_cfg_line(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "welcome", sendoption=1, scope="default")
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "welcome_default_on")
    assert "sendcoursewelcomemessage = 1" in f["message"]
    assert f["fix"].startswith("php admin/cli/cfg.php --component=enrol_manual --name=sendcoursewelcomemessage "
                               "--set=0")
    assert not [x for x in findings(result) if x["code"] == "welcome_instances_on"]


def test_courses_sending_welcome_messages_are_counted(sandbox_server: Any, cli_runner: CliRunner) -> None:
    """A course created while the default was on keeps sending after the default is turned off."""
    token = docs_site(sandbox_server)
    admin(sandbox_server, "welcome", sendoption=1, scope="default")
    for i in range(2):
        ws(sandbox_server, token, "core_course_create_courses", **{
            "courses[0][fullname]": f"Course {i}", "courses[0][shortname]": f"C{i}", "courses[0][categoryid]": "1"})
    admin(sandbox_server, "welcome", sendoption=0, scope="default")
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "welcome_instances_on")
    assert f["message"].startswith("2 manual enrolment instance(s)")
    assert "Enrolment methods > Manual enrolments" in f["fix"]


def test_blocked_receiver_names_the_curl_security_settings(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "receiver", url="http://10.1.2.3:8080/webhooks/moodle")
    admin(sandbox_server, "switch", name="receiver_blocked", on=1)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "receiver_blocked")
    assert "http://10.1.2.3:8080/webhooks/moodle" in f["message"] and "The URL is blocked." in f["message"]
    assert "php admin/cli/cfg.php --name=curlsecurityblockedhosts" in f["fix"] and "10.1.2.3" in f["fix"]
    assert "php admin/cli/cfg.php --name=curlsecurityallowedport" in f["fix"] and "8080" in f["fix"]
    human = check(cli_runner, sandbox_server, token)
    assert human.exit_code == 1
    assert "curlsecurityallowedport" in human.stdout and "Not ready" in human.stdout


def test_blocked_receiver_on_a_standard_port_needs_no_port_setting(sandbox_server: Any,
                                                                   cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "switch", name="receiver_blocked", on=1)
    f = only(check(cli_runner, sandbox_server, token, "--json"), "receiver_blocked")
    assert "curlsecurityblockedhosts" in f["fix"] and "curlsecurityallowedport" not in f["fix"]


def test_receiver_not_configured(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = admin(sandbox_server, "role_user")["token"]
    admin(sandbox_server, "welcome", sendoption=0, scope="all")
    f = only(check(cli_runner, sandbox_server, token, "--json"), "receiver_not_configured")
    assert "Local plugins > creditbridge > endpoint" in f["fix"]


def test_without_the_readiness_function_check_says_what_it_cannot_check(sandbox_server: Any,
                                                                       cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "capability", capability="moodle/course:changefullname", allow=0)
    admin(sandbox_server, "service", function=READINESS_FUNCTION, present=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 0, result.output  # nothing known to be wrong; the warning says what is unknown
    report = json.loads(result.stdout)
    assert not report["readiness_checked"]
    f = only(result, "readiness_unavailable")
    assert f["severity"] == "warning" and "cannot be checked" in f["message"]
    assert READINESS_FUNCTION in f["fix"] and "External services" in f["fix"]
    human = check(cli_runner, sandbox_server, token)
    assert human.exit_code == 0 and "readiness could not be checked" in human.stdout


def test_readiness_refused_names_the_plugin_capability(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "capability", capability="local/creditbridge:viewreadiness", allow=0)
    f = only(check(cli_runner, sandbox_server, token, "--json"), "readiness_denied")
    assert f["fix"].endswith("allow local/creditbridge:viewreadiness")


def test_admin_token_has_every_capability(sandbox_server: Any, cli_runner: CliRunner) -> None:
    """The sandbox's default token (the site administrator's): only the docs' settings are missing."""
    result = check(cli_runner, sandbox_server, sandbox_server.token, "--json")
    codes = {(f["code"], f["severity"]) for f in findings(result)}
    assert codes == {("welcome_default_on", "error"), ("receiver_not_configured", "warning")}
    assert result.exit_code == 1


def test_missing_functions_and_capabilities_together(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "service", function="enrol_manual_enrol_users", present=0)
    admin(sandbox_server, "capability", capability="moodle/cohort:assign", allow=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and not report["ok"]
    assert {f["code"] for f in report["findings"]} == {"function_missing", "capability_missing"}
    fn = only(result, "function_missing")
    assert "enrol_manual_enrol_users" in fn["message"] and fn["fix"].endswith("Add functions: enrol_manual_enrol_users")


def test_every_required_capability_is_reported_by_the_sandbox(sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    answer = ws(sandbox_server, token, READINESS_FUNCTION)
    assert [c["name"] for c in answer["capabilities"]] == list(REQUIRED_CAPABILITIES)
    assert all(c["allowed"] == 1 for c in answer["capabilities"])
    assert answer["welcomemessage"] == {"manual_default": 0, "instances_sending": 0}
    assert answer["receiver"] == {"url": "https://creditbridge.example/webhooks/moodle", "blocked": 0, "reason": ""}


def test_readiness_over_xml(sandbox_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site forcing XML: every leaf is a string, the check reads it the same."""
    config = tmp_path / "xml.toml"
    config.write_text('[moodle]\nretries = 1\nformat = "xml"\n', encoding="utf-8")
    monkeypatch.setenv("CREDITBRIDGE_CONFIG", str(config))
    token = docs_site(sandbox_server)
    runner = CliRunner()
    assert check(runner, sandbox_server, token).exit_code == 0
    admin(sandbox_server, "capability", capability="moodle/course:changefullname", allow=0)
    f = only(check(runner, sandbox_server, token, "--json"), "capability_missing")
    assert "moodle/course:changefullname" in f["message"]


GOOD = {"release": "4.5.6 (Build: 20250811)", "plugin_version": 2026120601, "enrolplugins": ["manual", "self"],
        "capabilities": [{"name": c, "allowed": 1} for c in REQUIRED_CAPABILITIES],
        "profilefields": ["schoolcode", "stage", "subject", "rural", "school", "county", "city"],
        "coursefields": ["credit_hours"], "welcomemessage": {"manual_default": 0, "instances_sending": 0},
        "receiver": {"url": "https://cb.example/webhooks/moodle", "blocked": 0, "reason": ""}}


@pytest.fixture
def fake_site() -> Iterator[tuple[dict[str, Any], str]]:
    """A Moodle whose readiness function answers whatever the test puts in `answer["body"]`."""
    answer: dict[str, Any] = {"body": GOOD}
    app = Flask("fake-moodle")

    @app.post("/webservice/rest/server.php")
    def server() -> Response:
        if request.form["wsfunction"] == "core_webservice_get_site_info":
            body: Any = {"sitename": "Fake", "username": "creditbridge", "userid": 3, "fullname": "C B",
                         "release": "4.5.6", "version": "2024100706.00",
                         "functions": [{"name": n, "version": "1"} for n in [*REQUIRED_FUNCTIONS, READINESS_FUNCTION]]}
        else:
            body = answer["body"]
        return Response(json.dumps(body), mimetype="application/json")

    handle = serve_in_thread(app)
    try:
        yield answer, handle.url
    finally:
        handle.stop()


@pytest.mark.parametrize(("body", "where"), [
    ([], "(the answer)"),
    ({**GOOD, "capabilities": "all"}, "capabilities"),
    ({**GOOD, "capabilities": [{"name": "moodle/course:view", "allowed": "yes"}]}, "capabilities.0.allowed"),
    ({k: v for k, v in GOOD.items() if k != "receiver"}, "receiver"),
    ({**GOOD, "welcomemessage": {"manual_default": None, "instances_sending": 0}}, "welcomemessage.manual_default"),
    ({**GOOD, "profilefields": [{"shortname": "x"}]}, "profilefields.0"),
])
def test_a_broken_readiness_answer_is_named_not_trusted(fake_site: Any, cli_runner: CliRunner, body: Any,
                                                        where: str) -> None:
    answer, url = fake_site
    answer["body"] = body
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"],
                               env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert not report["readiness_checked"]
    [f] = report["findings"]
    assert f["code"] == "readiness_unreadable" and f["severity"] == "warning"
    assert f"answered something unexpected at {where}:" in f["message"]


def test_the_fake_site_with_a_good_answer_is_ready(fake_site: Any, cli_runner: CliRunner) -> None:
    _, url = fake_site
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"],
                               env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32})
    assert result.exit_code == 0 and json.loads(result.stdout)["findings"] == []


def test_a_blocked_endpoint_with_credentials_is_shown_without_them(fake_site: Any, cli_runner: CliRunner) -> None:
    answer, url = fake_site
    answer["body"] = {**GOOD, "receiver": {"url": "https://hook:s3cr3t-pw@cb.example:8443/webhooks/moodle?key=k3y",
                                           "blocked": 1, "reason": "The URL is blocked."}}
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"],
                               env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32})
    assert result.exit_code == 1
    [f] = json.loads(result.stdout)["findings"]
    assert "https://cb.example:8443/webhooks/moodle" in f["message"] and "8443" in f["fix"]
    assert "s3cr3t-pw" not in result.output and "k3y" not in result.output


def test_a_blocked_endpoint_that_is_no_url(fake_site: Any, cli_runner: CliRunner) -> None:
    answer, url = fake_site
    answer["body"] = {**GOOD, "receiver": {"url": "http://cb.example:port/x", "blocked": 1,
                                           "reason": "The URL is blocked."}}
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"],
                               env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32})
    assert result.exit_code == 1
    [f] = json.loads(result.stdout)["findings"]
    assert f["code"] == "receiver_invalid" and "not a usable URL" in f["message"]
    assert "Local plugins > creditbridge > endpoint" in f["fix"]


# --- the enrolment policy's needs (docs/sync.md "Enrolment policy") ---------------------------------------------

def test_disabled_self_enrolment_is_named_with_its_fix(sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "enrol_plugin", name="self", enabled=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1, result.output
    f = only(result, "enrol_self_disabled")
    assert f["severity"] == "error" and "Manage enrol plugins: enable Self enrolment" in f["fix"]
    assert [x["code"] for x in findings(result)] == ["enrol_self_disabled"]


def test_a_service_without_configure_enrolment_names_the_plugin_to_install(sandbox_server: Any,
                                                                          cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "service", function=CONFIGURE_ENROLMENT_FUNCTION, present=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "function_missing")
    assert CONFIGURE_ENROLMENT_FUNCTION in f["message"] and "local_creditbridge 1.2" in f["fix"]
    assert 'electives = "manual"' in f["fix"]



def test_a_service_without_the_welcome_read_names_the_plugin_version_and_the_manual_policy_does_not_need_it(
        sandbox_server: Any, cli_runner: CliRunner) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "service", function=WELCOME_COURSES_FUNCTION, present=0)
    result = check(cli_runner, sandbox_server, token, "--json")
    assert result.exit_code == 1
    f = only(result, "function_missing")
    assert WELCOME_COURSES_FUNCTION in f["message"] and "welcome message" in f["message"]
    assert f"version {WELCOME_COURSES_SINCE}" in f["fix"] and "upgrade.php" in f["fix"]
    available = set(REQUIRED_FUNCTIONS) - {WELCOME_COURSES_FUNCTION}
    assert function_findings(available, SyncSettings(electives="manual")) == []

@pytest.mark.parametrize("capability", ["moodle/course:enrolconfig", "enrol/manual:config", "enrol/self:config"])
def test_each_enrolment_configuration_capability_is_named(sandbox_server: Any, cli_runner: CliRunner,
                                                          capability: str) -> None:
    token = docs_site(sandbox_server)
    admin(sandbox_server, "capability", capability=capability, allow=0)
    f = only(check(cli_runner, sandbox_server, token, "--json"), "capability_missing")
    assert f["fix"].endswith(f"allow {capability}")


def test_an_old_plugin_is_named_and_the_manual_policy_does_not_need_it(
        fake_site: Any, cli_runner: CliRunner, tmp_path: Path) -> None:
    answer, url = fake_site
    old = {k: v for k, v in GOOD.items() if k != "enrolplugins"}
    answer["body"] = {**old, "plugin_version": 2026120600,
                      "capabilities": [c for c in GOOD["capabilities"] if c["name"] not in (
                          "moodle/course:enrolconfig", "enrol/manual:config", "enrol/self:config")]}
    env = {"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32}
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"], env=env)
    assert result.exit_code == 1, result.output
    [f] = json.loads(result.stdout)["findings"]  # the capabilities it cannot ask about are not called missing
    assert f["code"] == "plugin_old" and "2026120600" in f["message"] and "upgrade.php" in f["fix"]
    manual = tmp_path / "manual.toml"
    manual.write_text('[moodle]\nretries = 1\nbackoff_seconds = 0\n\n[sync]\nelectives = "manual"\n', encoding="utf-8")
    result = cli_runner.invoke(cli, ["--config", str(manual), "moodle", "check", "--json"], env=env)
    assert result.exit_code == 0 and json.loads(result.stdout)["findings"] == [], result.output
