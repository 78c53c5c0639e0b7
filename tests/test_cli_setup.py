"""`creditbridge --version`, `init`, and how configuration errors reach the user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from creditbridge import __version__
from creditbridge.cli.main import cli


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_init_writes_config_and_creates_store(runner: CliRunner, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # init writes into the working directory
    result = runner.invoke(cli, ["init", "--json"], env={"CREDITBRIDGE_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["config_written"] is True
    text = Path("creditbridge.toml").read_text(encoding="utf-8")
    assert "[moodle]" in text and "CREDITBRIDGE_MOODLE_TOKEN" in text
    tables = inspect(create_engine("sqlite:///creditbridge.db")).get_table_names()
    assert "teacher" in tables and "learning_record" in tables
    # Running it again keeps the file a person may have edited.
    Path("creditbridge.toml").write_text(text + "\n# edited\n", encoding="utf-8")
    again = runner.invoke(cli, ["init"])
    assert again.exit_code == 0
    assert "kept existing" in again.output
    assert Path("creditbridge.toml").read_text(encoding="utf-8").endswith("# edited\n")


def test_database_url_from_environment(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "elsewhere.db"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    result = runner.invoke(cli, ["init"], env={"CREDITBRIDGE_DATABASE_URL": f"sqlite:///{db}"})
    assert result.exit_code == 0, result.output
    assert "teacher" in inspect(create_engine(f"sqlite:///{db}")).get_table_names()
    assert not (tmp_path / "cwd" / "creditbridge.db").exists()


def test_bad_config_is_a_clean_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[moodle]\nretries = -1\n")
    env = {**os.environ, "CREDITBRIDGE_CONFIG": str(cfg)}
    proc = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "init", "--path", str(tmp_path / "x.toml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "moodle.retries" in proc.stderr
    assert "Traceback" not in proc.stderr
