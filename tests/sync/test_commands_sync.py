"""The sync commands as a person sees them: text output, the report path, progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sync_helpers import SAMPLES, Env, make_env, people, write_roster


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest, sqlite_url: str) -> Env:
    return make_env(tmp_path, request.getfixturevalue("sandbox_server"), sqlite_url)


def test_text_output_names_counts_errors_and_the_report(tmp_path: Path, env: Env, runner: CliRunner) -> None:
    staff = people(3)
    rows: list[Any] = [*staff, staff[0].moved(name="重复")]
    result = env.run(runner, "sync", "roster", str(write_roster(tmp_path / "r.csv", rows)))
    assert result.exit_code == 0
    assert "created 2" in result.stdout
    report = result.stdout.strip().splitlines()[-1]
    assert report.startswith("report: ") and Path(report.removeprefix("report: ")).exists()
    assert "row 2, 身份证号" in result.stderr and "row 5, 身份证号" in result.stderr
    assert "370102198501010011" not in result.output  # masked


def test_json_is_one_object_and_nothing_else(tmp_path: Path, env: Env, runner: CliRunner) -> None:
    result = env.run(runner, "sync", "catalog", str(SAMPLES / "catalog.csv"), "--json")
    doc = json.loads(result.stdout)  # raises if anything else is on stdout
    assert doc["created"] == 57 and doc["run_id"] == 1 and doc["report"].endswith(".xlsx")


def test_progress_bar_only_on_a_terminal(tmp_path: Path, env: Env) -> None:
    roster = write_roster(tmp_path / "r.csv", people(6))
    argv = [sys.executable, "-m", "creditbridge.cli.main", "--config", str(env.config), "sync", "roster", str(roster)]
    environ = {**os.environ, **env.env, "COLUMNS": "120", "TERM": "xterm"}

    piped = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "reading" not in piped.stderr and "━" not in piped.stderr and "\x1b[" not in piped.stderr

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    text = seen.decode("utf-8", "replace")
    assert "reading" in text and "━" in text  # rich's bar, drawn on the terminal's stderr


def test_a_refused_token_stops_the_run_with_exit_1_and_the_run_is_recorded(tmp_path: Path, env: Env,
                                                                           runner: CliRunner) -> None:
    env.env["CREDITBRIDGE_MOODLE_TOKEN"] = "0123456789abcdef0123456789abcdef"
    result = env.run(runner, "sync", "roster", str(write_roster(tmp_path / "r.csv", people(2))), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["created"] == 0 and any("run stopped" in e["reason"] for e in doc["errors"])
    runs = json.loads(env.run(runner, "sync", "runs", "--json").stdout)
    assert runs[0]["outcome"] == "aborted" and runs[0]["run_id"] == doc["run_id"]
