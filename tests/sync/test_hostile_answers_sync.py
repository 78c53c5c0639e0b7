"""`sync roster` against a "Moodle" whose lookup answers the wrong shape (attack report item 4): the client's
ProtocolError stops the run as any Moodle failure does (exit 1, the run recorded as aborted with the reason),
never a TypeError traceback and never a half-recorded run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request
from sync_helpers import people, write_roster

from creditbridge.cli.http_server import serve_in_thread
from creditbridge.cli.main import cli


@pytest.fixture
def hostile_moodle() -> Iterator[str]:
    app = Flask("hostile-moodle")

    @app.post("/webservice/rest/server.php")
    def server() -> Response:
        # Every lookup answers an object where Moodle answers a list of users.
        body: Any = {"users": "none"} if request.form["wsfunction"] == "core_user_get_users_by_field" else []
        return Response(json.dumps(body), mimetype="application/json")

    handle = serve_in_thread(app)
    try:
        yield handle.url
    finally:
        handle.stop()


def test_sync_roster_stops_on_a_malformed_answer(tmp_path: Path, hostile_moodle: str, sqlite_url: str,
                                                runner: CliRunner) -> None:
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[moodle]\nretries = 0\nbackoff_seconds = 0\n[sync]\nusername_key = "test-key"\n'
                      f'report_dir = "{(tmp_path / "reports").as_posix()}"\n', encoding="utf-8")
    env = {"CREDITBRIDGE_MOODLE_URL": hostile_moodle, "CREDITBRIDGE_MOODLE_TOKEN": "t" * 32,
           "CREDITBRIDGE_DATABASE_URL": sqlite_url}
    roster = write_roster(tmp_path / "r.csv", people(2))
    result = runner.invoke(cli, ["--config", str(config), "sync", "roster", str(roster), "--json"], env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["created"] == 0
    assert any("a list expected, got an object" in e["reason"] for e in doc["errors"]), doc["errors"]
    runs = json.loads(runner.invoke(cli, ["--config", str(config), "sync", "runs", "--json"], env=env).stdout)
    assert runs[0]["outcome"] == "aborted" and runs[0]["run_id"] == doc["run_id"]
