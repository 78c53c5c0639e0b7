"""A Moodle (or something posing as one) that answers garbage, as the hostile tester's fake did (attack report
items 4 and 10): an answer of the wrong shape is the client's protocol error, so `moodle check`, `moodle call`
and `intake reconcile` say `error: ...` and exit 2 ("cannot ask"), never a traceback with exit 1 ("not ready");
names and messages from the site reach the terminal with their control characters escaped and ID numbers
masked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.cli.main import cli
from creditbridge.connector.functions import READINESS_FUNCTION, REQUIRED_CAPABILITIES, REQUIRED_FUNCTIONS

TOKEN = "f" * 32
ID_NUMBER = "11010519491231002X"
ESC_TITLE = "\x1b]0;owned\x07"  # sets the terminal's title
ESC_CLEAR = "\x1b[2J\x1b[H"  # clears the screen
CSI_8BIT = "\x9b31m"  # one-byte CSI: red on terminals that take C1 controls

SITE_INFO = {"sitename": "Fake", "siteurl": "http://fake", "username": "creditbridge", "userid": 3,
             "fullname": "C B", "release": "4.5.6", "version": "2024100706.00",
             "functions": [{"name": n, "version": "1"} for n in [*REQUIRED_FUNCTIONS, READINESS_FUNCTION]]}
READINESS = {"release": "4.5.6", "plugin_version": 2026120601, "enrolplugins": ["manual", "self"],
             "capabilities": [{"name": c, "allowed": 1} for c in REQUIRED_CAPABILITIES],
             "profilefields": ["schoolcode", "stage", "subject", "rural", "school", "county", "city"],
             "coursefields": ["credit_hours"], "welcomemessage": {"manual_default": 0, "instances_sending": 0},
             "receiver": {"url": "https://cb.example/webhooks/moodle", "blocked": 0, "reason": ""}}


@pytest.fixture
def site() -> Iterator[tuple[dict[str, str], str]]:
    """A fake Moodle on 127.0.0.1: `bodies[function]` is the raw text it answers (JSON of a good site by
    default)."""
    bodies = {"core_webservice_get_site_info": json.dumps(SITE_INFO), READINESS_FUNCTION: json.dumps(READINESS)}
    app = Flask("hostile-moodle")

    @app.post("/webservice/rest/server.php")
    def server() -> Response:
        return Response(bodies.get(request.form["wsfunction"], "[]"), mimetype="application/json")

    handle = serve_in_thread(app)
    try:
        yield bodies, handle.url
    finally:
        handle.stop()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[moodle]\nretries = 0\nbackoff_seconds = 0\ntimeout_seconds = 10\n'
                    f'[database]\nurl = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8")
    return path


def invoke(runner: CliRunner, config: Path, url: str, *args: str) -> Any:
    return runner.invoke(cli, ["--config", str(config), *args],
                         env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN})


def info_with(**changes: Any) -> str:
    return json.dumps({**SITE_INFO, **changes})


BROKEN_SITE_INFO = [
    ("list", "[1,2]", "an object expected, got a list"),
    ("null", "null", "an object expected, got null"),
    ("string", '"hello"', "an object expected, got a str"),
    ("functions_strings", info_with(functions=["core_user_create_users"]), "functions.0"),
    ("functions_dict", info_with(functions={"core_user_create_users": 1}), "functions"),
    ("functions_null", info_with(functions=None), "functions"),
    ("functions_without_name", info_with(functions=[{"version": "1"}]), "functions.0.name"),
    ("no_functions", json.dumps({"sitename": "x"}), "functions"),
    ("sitename_object", info_with(sitename={"a": 1}), "sitename"),
    ("deep", "[" * 200_000 + "]" * 200_000, "nested too deeply"),
]


@pytest.mark.parametrize(("name", "body", "said"), BROKEN_SITE_INFO, ids=[c[0] for c in BROKEN_SITE_INFO])
def test_check_on_a_broken_site_info_cannot_ask(site: Any, config: Path, runner: CliRunner, name: str,
                                                 body: str, said: str) -> None:
    bodies, url = site
    bodies["core_webservice_get_site_info"] = body
    text = invoke(runner, config, url, "moodle", "check")
    assert text.exit_code == 2, text.output
    assert text.stderr.startswith("error: core_webservice_get_site_info: ") or text.stderr.startswith("error: ")
    assert said in text.stderr and "Traceback" not in text.output
    as_json = invoke(runner, config, url, "moodle", "check", "--json")
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)
    assert error["error"] == "ProtocolError" and said in error["message"]


def test_call_and_reconcile_on_a_broken_site_info(site: Any, config: Path, runner: CliRunner) -> None:
    bodies, url = site
    bodies["core_webservice_get_site_info"] = "[1,2]"
    reconcile = invoke(runner, config, url, "intake", "reconcile")
    assert reconcile.exit_code == 2 and reconcile.output.startswith("error: "), reconcile.output
    assert "an object expected, got a list" in reconcile.output
    bodies["core_user_get_users_by_field"] = '{"users": []}'
    call = invoke(runner, config, url, "moodle", "call", "core_user_get_users_by_field", "field=id", "values[0]=1")
    assert call.exit_code == 2 and "a list expected, got an object" in call.stderr, call.output
    bodies["core_enrol_get_enrolled_users"] = '[{"id": 1}, "x"]'
    call = invoke(runner, config, url, "moodle", "call", "core_enrol_get_enrolled_users", "courseid=2")
    assert call.exit_code == 2 and "item 1 is a str, not an object" in call.stderr, call.output


def test_deep_json_as_the_tester_sent_it(site: Any, config: Path) -> None:
    """`moodle call` and `moodle check` in their own process: one line, exit 2, no RecursionError traceback."""
    bodies, url = site
    bodies["core_webservice_get_site_info"] = "[" * 200_000
    for args in (["moodle", "check"], ["moodle", "call", "core_webservice_get_site_info"]):
        proc = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=60,
                              env={"CREDITBRIDGE_MOODLE_URL": url, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN, "PATH": ""})
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "nested too deeply" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_receiver_url_moodle_cannot_parse_is_a_finding(site: Any, config: Path, runner: CliRunner) -> None:
    bodies, url = site
    bodies[READINESS_FUNCTION] = json.dumps({**READINESS, "receiver": {
        "url": "http://[::1/x", "blocked": 1, "reason": "The URL is blocked."}})
    result = invoke(runner, config, url, "moodle", "check", "--json")
    assert result.exit_code == 1, result.output  # the site answered: not ready, with what to fix
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["code"] == "receiver_invalid" and "The URL is blocked." in finding["message"]


def test_site_text_reaches_the_terminal_escaped_and_masked(site: Any, config: Path, runner: CliRunner) -> None:
    bodies, url = site
    bodies["core_webservice_get_site_info"] = info_with(
        sitename=f"Province {ESC_TITLE}{ESC_CLEAR}{CSI_8BIT}\u202eevil {ID_NUMBER}",
        fullname=f"Admin {ID_NUMBER}{ESC_CLEAR}", username=f"u{ESC_CLEAR}")
    bodies[READINESS_FUNCTION] = json.dumps({**READINESS, "receiver": {
        "url": "http://10.0.0.5:8080/webhooks/moodle", "blocked": 1, "reason": f"blocked {ESC_CLEAR}by curl"}})
    result = invoke(runner, config, url, "moodle", "check")
    assert result.exit_code == 1, result.output
    out = result.output
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", ID_NUMBER):
        assert raw not in out, (raw, out)
    assert "Province \\x1b]0;owned\\x07\\x1b[2J\\x1b[H\\x9b31m\\u202eevil 1101************2X" in out
    assert "Admin 1101************2X\\x1b[2J" in out and "blocked \\x1b[2J\\x1b[Hby curl" in out
    as_json = invoke(runner, config, url, "moodle", "check", "--json")
    report = json.loads(as_json.stdout)
    assert ID_NUMBER not in as_json.output and "\x1b" not in as_json.output  # JSON writes ESC as \u001b
    assert report["sitename"].endswith("evil 1101************2X")


@pytest.mark.parametrize("as_json", [False, True])
def test_error_text_of_the_site_is_escaped(site: Any, config: Path, runner: CliRunner, as_json: bool) -> None:
    bodies, url = site
    bodies["core_webservice_get_site_info"] = json.dumps({
        "exception": "moodle_exception", "errorcode": "invalidtoken",
        "message": f"Invalid token {ESC_CLEAR} {ID_NUMBER}", "debuginfo": f"line\n{ESC_TITLE}"})
    result = invoke(runner, config, url, "moodle", "check", *(["--json"] if as_json else []))
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "\x07" not in result.output and ID_NUMBER not in result.output
    if not as_json:
        assert result.stderr.startswith("error: Invalid token \\x1b[2J\\x1b[H 1101************2X [invalidtoken]")
        assert "debuginfo: line\n\\x1b]0;owned\\x07" in result.stderr


def test_sync_error_of_the_site_is_escaped_by_the_cli(site: Any, config: Path, runner: CliRunner) -> None:
    """The CLI's own `error: ...` (any command: here reconcile, whose site info call is refused) escapes too."""
    bodies, url = site
    bodies["core_webservice_get_site_info"] = json.dumps({
        "exception": "moodle_exception", "errorcode": "invalidtoken", "message": f"Invalid token{ESC_CLEAR}"})
    result = invoke(runner, config, url, "intake", "reconcile")
    assert result.exit_code == 2 and result.output.startswith("error: "), result.output
    assert "\x1b" not in result.output and "Invalid token\\x1b[2J\\x1b[H" in result.output
