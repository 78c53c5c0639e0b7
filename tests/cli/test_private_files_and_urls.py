"""#14 items 1 and 3 as `init` is used, and item 2's Moodle URL password: run as a user runs them (subprocess,
umask 022, no CREDITBRIDGE_* variables from the environment of the test run)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from sqlalchemy import text

from creditbridge.settings import load_settings
from creditbridge.store import open_store


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "creditbridge.cli.main", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_config_and_store_readable_by_the_owner_only(tmp_path: Path) -> None:
    proc = run(tmp_path, "init", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config_written"] is True
    config, db = tmp_path / "creditbridge.toml", tmp_path / "creditbridge.db"
    assert (mode(config), mode(db)) == (0o600, 0o600)
    # SQLite's -wal and -shm files, made while a process writes, take the database file's mode.
    store = open_store(f"sqlite:///{db}")
    with store.engine.connect() as c:
        c.execute(text("CREATE TABLE probe (a INTEGER)"))
        c.commit()
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(wal), mode(shm)) == (0o600, 0o600)
    store.dispose()


def test_init_generates_a_username_key_and_overwrite_tightens_the_mode(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    assert run(one, "init").returncode == 0 and run(two, "init").returncode == 0
    keys = [tomllib.loads((d / "creditbridge.toml").read_text(encoding="utf-8"))["sync"]["username_key"]
            for d in (one, two)]
    assert len(keys[0]) >= 40 and keys[0] != keys[1]  # random, 256 bits, per installation
    assert load_settings(one / "creditbridge.toml", env={}).sync.username_key.get_secret_value() == keys[0]
    # The key is never printed.
    again = run(one, "init", "--overwrite")
    assert keys[0] not in again.stdout + again.stderr

    # A config someone made world-readable before: --overwrite makes it 0600 before the new key goes in.
    loose = tmp_path / "loose.toml"
    loose.write_text("# old\n", encoding="utf-8")
    loose.chmod(0o644)
    proc = run(tmp_path, "init", "--path", str(loose), "--overwrite",
               CREDITBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'loose.db'}")
    assert proc.returncode == 0, proc.stderr
    assert mode(loose) == 0o600 and "username_key = \"" in loose.read_text(encoding="utf-8")


def test_init_names_files_others_can_read(tmp_path: Path) -> None:
    """Files from before this change keep their mode; init says which ones to chmod."""
    config, db = tmp_path / "creditbridge.toml", tmp_path / "creditbridge.db"
    assert run(tmp_path, "init").returncode == 0
    config.chmod(0o644)
    db.chmod(0o640)
    proc = run(tmp_path, "init")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {config.name} is readable by other users (mode 644)" in proc.stderr
    assert f"warning: {db.name} is readable by other users (mode 640)" in proc.stderr
    config.chmod(0o600)
    db.chmod(0o600)
    assert "readable by other users" not in run(tmp_path, "init").stderr


def test_init_keeping_a_config_without_key_says_sync_will_refuse(tmp_path: Path) -> None:
    (tmp_path / "creditbridge.toml").write_text("[sync]\nprogramme = \"sd-2022\"\n", encoding="utf-8")
    proc = run(tmp_path, "init")
    assert proc.returncode == 0, proc.stderr
    assert "kept existing" in proc.stdout
    assert "warning: sync.username_key is empty" in proc.stderr
    # ... and not when the key comes from the environment.
    quiet = run(tmp_path, "init", CREDITBRIDGE_USERNAME_KEY="k" * 43)
    assert quiet.returncode == 0 and "username_key" not in quiet.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_moodle_url_password_is_never_shown(tmp_path: Path, sandbox_server: Any) -> None:
    # Unreachable: the connection error names the URL, with the password hidden.
    down = run(tmp_path, "moodle", "check", CREDITBRIDGE_MOODLE_URL=f"http://admin:hunter2@127.0.0.1:{_closed_port()}",
               CREDITBRIDGE_MOODLE_TOKEN="x" * 32)
    assert down.returncode == 2
    assert "hunter2" not in down.stdout + down.stderr
    assert "http://admin:***@127.0.0.1:" in down.stderr

    # Reachable (the sandbox ignores the basic-auth header): the report shows the URL masked, text and JSON.
    url = sandbox_server.url.replace("http://", "http://admin:hunter2@")
    for flags in ([], ["--json"]):
        ok = run(tmp_path, "-vv", "moodle", "check", *flags, CREDITBRIDGE_MOODLE_URL=url,
                 CREDITBRIDGE_MOODLE_TOKEN=sandbox_server.token)
        assert ok.returncode in (0, 1), ok.stderr
        assert "hunter2" not in ok.stdout + ok.stderr
        assert "admin:***@127.0.0.1" in ok.stdout
