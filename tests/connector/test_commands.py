"""`creditbridge moodle check` / `moodle call` against a loopback HTTP server replaying recorded answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request
from moodle_ws_fixtures import answer

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.cli.main import cli
from creditbridge.connector.functions import REQUIRED_FUNCTIONS

TOKEN = "cli0123456789abcdef0123456789abcd"


class Replay:
    """Answers each function with a recorded body; remembers every form it got."""

    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}
        self.forms: list[dict[str, str]] = []


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    state = Replay()
    app = Flask("moodle-replay")

    @app.post("/webservice/rest/server.php")
    def server() -> Response:
        form = request.form.to_dict()
        state.forms.append(form)
        if form.get("wstoken") != TOKEN:
            body = answer("core_webservice_get_site_info", "Invalid token [debug")
        else:
            body = state.bodies[form["wsfunction"]]
        return Response(body, mimetype="application/json")

    handle = serve_in_thread(app)
    try:
        yield state, handle.url
    finally:
        handle.stop()


@pytest.fixture
def cli_runner(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose settings file keeps retries short; URL and token come from the environment."""
    config = tmp_path / "creditbridge.toml"
    config.write_text("[moodle]\nretries = 1\nbackoff_seconds = 0\ntimeout_seconds = 5\n", encoding="utf-8")
    monkeypatch.setenv("CREDITBRIDGE_CONFIG", str(config))
    return CliRunner()


def _env(url: str, token: str = TOKEN) -> dict[str, str]:
    return {"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": token}


def _recorded_info_with_required() -> dict[str, Any]:
    """The recorded site info, its service grown by what creditbridge needs since (issue 13:
    core_course_get_course_module, to name activities in reconciliation)."""
    info = json.loads(answer("core_webservice_get_site_info", "JSON, POST"))
    have = {f["name"] for f in info["functions"]}
    info["functions"] += [{"name": n, "version": info["version"]} for n in REQUIRED_FUNCTIONS if n not in have]
    return info


def test_check_lists_no_missing_function(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    state, url = replay
    state.bodies["core_webservice_get_site_info"] = json.dumps(_recorded_info_with_required())
    result = cli_runner.invoke(cli, ["moodle", "check", "--json"], env=_env(url))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["missing"] == []
    assert report["release"] == "4.5.5+ (Build: 20250613)"
    assert report["user"]["username"] == "admin"
    assert state.forms[0]["wstoken"] == TOKEN


def test_check_shows_missing_functions_and_exits_1(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    state, url = replay
    info = _recorded_info_with_required()
    info["functions"] = [f for f in info["functions"] if f["name"] != "enrol_manual_enrol_users"]
    state.bodies["core_webservice_get_site_info"] = json.dumps(info)
    result = cli_runner.invoke(cli, ["moodle", "check"], env=_env(url))
    assert result.exit_code == 1
    assert "enrol_manual_enrol_users" in result.stdout
    assert "Local Moodle WS Test" in result.stdout
    assert "4.5.5+" in result.stdout
    as_json = json.loads(cli_runner.invoke(cli, ["moodle", "check", "--json"], env=_env(url)).stdout)
    assert [m["function"] for m in as_json["missing"]] == ["enrol_manual_enrol_users"]


def test_check_with_wrong_token(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    _, url = replay
    result = cli_runner.invoke(cli, ["moodle", "check"], env=_env(url, token="wrong-token-value"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "[invalidtoken]" in result.stderr
    assert "wrong-token-value" not in result.output


def test_call_with_bracket_params(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    state, url = replay
    state.bodies["core_user_get_users_by_field"] = answer("core_user_get_users_by_field", "(2 found, 1 not found)")
    result = cli_runner.invoke(cli, ["moodle", "call", "core_user_get_users_by_field", "field=username",
                                     "values[0]=tch100001", "values[1]=tch100002", "--json"], env=_env(url))
    assert result.exit_code == 0, result.output
    assert [u["username"] for u in json.loads(result.stdout)] == ["tch100001", "tch100002"]
    sent = state.forms[0]
    assert sent["values[0]"] == "tch100001" and sent["values[1]"] == "tch100002"
    assert sent["moodlewsrestformat"] == "json"


def test_call_error_prints_errorcode_and_exits_2(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    state, url = replay
    state.bodies["core_course_get_contents"] = answer("core_course_get_contents", "courseid=abc")
    result = cli_runner.invoke(cli, ["moodle", "call", "core_course_get_contents", "courseid=abc"], env=_env(url))
    assert result.exit_code == 2
    assert "invalidparameter" in result.stderr and "Invalid parameter value detected" in result.stderr
    result = cli_runner.invoke(cli, ["moodle", "call", "core_course_get_contents", "courseid=abc", "--json"],
                               env=_env(url))
    assert result.exit_code == 2
    assert json.loads(result.stdout)["errorcode"] == "invalidparameter"


def test_call_rejects_malformed_params(replay: tuple[Replay, str], cli_runner: CliRunner) -> None:
    _, url = replay
    result = cli_runner.invoke(cli, ["moodle", "call", "core_user_get_users", "nonsense"], env=_env(url))
    assert result.exit_code == 2 and "name=value" in result.output
    result = cli_runner.invoke(cli, ["moodle", "call", "core_user_get_users", "wstoken=x"], env=_env(url))
    assert result.exit_code == 2
