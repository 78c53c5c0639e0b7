"""`creditbridge sandbox` as a user runs it: a subprocess on a free port, then `creditbridge moodle ...` against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.connector.moodle import MoodleClient

CLI = [sys.executable, "-m", "creditbridge.cli.main"]
TOKEN = "5a4db0c0ffee5a4db0c0ffee5a4db0c0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One sandbox process for the module: starting the CLI costs seconds on a busy machine."""
    tmp_path = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    db = tmp_path / "site.db"
    proc = subprocess.Popen([*CLI, "sandbox", "--port", str(port), "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN})
    assert proc.stdout is not None
    first = proc.stdout.readline()
    lines = [first] + [proc.stdout.readline() for _ in range(3)]
    config = tmp_path / "creditbridge.toml"
    config.write_text("[moodle]\nretries = 0\n", encoding="utf-8")
    env = {**os.environ, "CREDITBRIDGE_CONFIG": str(config), "CREDITBRIDGE_MOODLE_URL": f"http://127.0.0.1:{port}",
           "CREDITBRIDGE_MOODLE_TOKEN": TOKEN}
    try:
        yield {"proc": proc, "port": port, "lines": lines, "env": env, "db": db}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), env=env, capture_output=True, text=True, timeout=60)


def test_sandbox_passes_moodle_check(running: dict[str, Any]) -> None:
    lines = running["lines"]
    assert lines[0].strip() == f"sandbox LMS listening on http://127.0.0.1:{running['port']}"
    assert not any(TOKEN in line for line in lines), "a given token is only hinted at"
    assert any("5a4d…" in line for line in lines)
    result = run(running["env"], "moodle", "check", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["missing"] == []
    # Like a fresh Moodle 4.5, a fresh sandbox sends course welcome messages: the one problem check names.
    assert result.returncode == 1, result.stderr
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["welcome_default_on"]


def test_complete_command_records_a_course_completion(running: dict[str, Any]) -> None:
    env = running["env"]
    with MoodleClient.from_url(env["CREDITBRIDGE_MOODLE_URL"], TOKEN, backoff_seconds=0) as client:
        [(_, user)] = client.create_users([{"username": "tch1", "firstname": "A", "lastname": "B",
                                            "email": "tch1@example.org", "password": "Teach#2024a"}]).succeeded
        [(_, course)] = client.create_courses([{"fullname": "C", "shortname": "C1", "categoryid": 1}]).succeeded
        runner = CliRunner()
        done = runner.invoke(cli, ["sandbox", "complete", "--userid", str(user["id"]), "--courseid",
                                   str(course["id"]), "--json"], env=env)
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["timecompleted"] > 0
        client.enrol_users([{"roleid": 5, "userid": user["id"], "courseid": course["id"]}])
        client.call("core_user_update_users", users=[{"id": user["id"], "firstname": "Changed"}])
        assert client.get_users_courses(user["id"])[0]["completed"] is True
    unknown = runner.invoke(cli, ["sandbox", "complete", "--userid", "999", "--courseid", str(course["id"])], env=env)
    assert unknown.exit_code == 2 and "no user 999" in unknown.stderr
    wrong = runner.invoke(cli, ["sandbox", "complete", "--userid", "3", "--courseid", str(course["id"])],
                          env={**env, "CREDITBRIDGE_MOODLE_TOKEN": "nope"})
    assert wrong.exit_code == 2 and "invalid admin token" in wrong.stderr and "nope" not in wrong.stderr


def test_file_database_survives_a_restart(tmp_path: Path) -> None:
    from creditbridge.sandbox.app import create_app, state_of

    db = str(tmp_path / "site.db")
    app = create_app({"SANDBOX_TOKEN": "first", "SANDBOX_DB": db})
    state_of(app).create_user("kept")
    state_of(app).close()
    again = create_app({"SANDBOX_TOKEN": "second", "SANDBOX_DB": db})
    state = state_of(again)
    assert state.user_by_username("kept") is not None
    assert state.token("first") is None and state.token("second") is not None  # one valid admin token
    assert state.create_user("next") == 4  # ids continue after guest 1, admin 2, kept 3
    state.close()


def test_role_docs_gives_the_token_to_a_user_with_the_docs_role(tmp_path: Path) -> None:
    """`creditbridge sandbox --role docs`: the token is the creditbridge user's, as strict as a real site."""
    port = free_port()
    proc = subprocess.Popen([*CLI, "sandbox", "--port", str(port), "--role", "docs"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert any("user `creditbridge`" in line for line in lines), lines
        config = tmp_path / "creditbridge.toml"
        config.write_text("[moodle]\nretries = 0\n", encoding="utf-8")
        env = {**os.environ, "CREDITBRIDGE_CONFIG": str(config),
               "CREDITBRIDGE_MOODLE_URL": f"http://127.0.0.1:{port}", "CREDITBRIDGE_MOODLE_TOKEN": TOKEN}
        result = run(env, "moodle", "check", "--json")
        report = json.loads(result.stdout)
        assert report["user"]["username"] == "creditbridge" and report["readiness_checked"]
        assert not [f for f in report["findings"] if f["code"] == "capability_missing"]
        user = ["users[0][username]=tch1", "users[0][password]=Teach#2024a", "users[0][firstname]=A",
                "users[0][lastname]=B", "users[0][email]=tch1@example.org"]
        assert run(env, "sandbox", "site", "--deny", "moodle/user:create").returncode == 0
        refused = run(env, "moodle", "call", "core_user_create_users", *user)
        assert refused.returncode == 2
        assert refused.stderr == ("error: Sorry, but you do not currently have permissions to do that (Create "
                                  "users). [nopermissions]\n")
        assert run(env, "sandbox", "site", "--allow", "moodle/user:create").returncode == 0
        assert run(env, "moodle", "call", "core_user_create_users", *user).returncode == 0
        bad = run(env, "sandbox", "--role", "root", "--port", "0")
        assert bad.returncode == 2 and "'root' is not one of 'admin', 'docs'" in bad.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
