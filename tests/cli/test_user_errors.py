"""What a person sees when the setup is wrong: one `error: ...` line, exit 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.store import open_store
from creditbridge.store.db import StoreError


def _creditbridge(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "creditbridge.toml"
    if not config.exists():
        config.write_text("[moodle]\nretries = 1\nbackoff_seconds = 0\nconnect_timeout_seconds = 2\n", encoding="utf-8")
    full_env = {**os.environ, "CREDITBRIDGE_CONFIG": str(config),
                "CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", **env}
    return subprocess.run([sys.executable, "-m", "creditbridge.cli.main", *args], capture_output=True, text=True,
                          env=full_env, cwd=tmp_path, timeout=120)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_help_lists_every_command_by_its_whole_first_sentence(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    listing = result.output.split("Commands:", 1)[1]
    assert "..." not in listing  # click's 45-character cut
    for name in ("init", "moodle", "sandbox", "sync", "push", "report", "registry-sim", "scheduler"):
        assert f"\n  {name} " in listing
    assert "create (or upgrade) the" in listing and "state store" in listing
    assert "..." not in runner.invoke(cli, ["sync", "--help"]).output.split("Commands:", 1)[1]


def test_unreachable_moodle_is_one_error_line(tmp_path: Path) -> None:
    token = "feedfacefeedfacefeedfacefeedface"
    proc = _creditbridge(tmp_path, "moodle", "check", CREDITBRIDGE_MOODLE_URL=f"http://127.0.0.1:{_closed_port()}",
                         CREDITBRIDGE_MOODLE_TOKEN=token)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot connect to http://127.0.0.1:")
    assert "Traceback" not in proc.stderr and "urllib3" not in proc.stderr  # no per-retry warning lines
    assert token not in proc.stderr + proc.stdout


def test_unreachable_database_names_the_url_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://creditbridge:hunter2secret@127.0.0.1:{_closed_port()}/x"
    proc = _creditbridge(tmp_path, "push", CREDITBRIDGE_DATABASE_URL=url, CREDITBRIDGE_REGISTRY_SECRET="s" * 16)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot open the state store postgresql+psycopg://creditbridge:***@")
    assert "hunter2secret" not in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_database_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not-a-url-with-p4ssw0rd")
    proc = _creditbridge(tmp_path, "report", "--json", CREDITBRIDGE_DATABASE_URL="not-a-url-with-p4ssw0rd")
    assert proc.returncode == 2 and proc.stderr.startswith("error: database.url")
    assert "p4ssw0rd" not in proc.stderr and "Traceback" not in proc.stderr


def test_store_repr_hides_the_password(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert repr(store) == f"Store('sqlite:///{tmp_path / 'x.db'}')"
    finally:
        store.dispose()


def test_init_writes_the_config_file_named_by_config(tmp_path: Path, runner: CliRunner) -> None:
    target = tmp_path / "site.toml"
    result = runner.invoke(cli, ["--config", str(target), "init", "--json"],
                           env={"CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"})
    assert result.exit_code == 0, result.output
    assert target.is_file() and "[moodle]" in target.read_text(encoding="utf-8")
    assert not (tmp_path / "creditbridge.toml").exists()


def test_registry_sim_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _creditbridge(tmp_path, "registry-sim", "--port", str(port), "--db", ":memory:",
                             CREDITBRIDGE_REGISTRY_SECRET="s" * 16)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr
