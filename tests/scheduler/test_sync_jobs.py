"""The sync and reconcile jobs with the real services against the sandbox LMS: the sample catalog and roster
are synced once, a second run of an unchanged file is skipped, a changed file is synced again."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixture_paths import fixture

from creditbridge.cli.main import cli

SAMPLES = fixture("samples", "sd-2022")
TOKEN = "scheduler-test-token"


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    from creditbridge.sandbox.app import create_app
    from creditbridge.sandbox.server import serve_in_thread

    handle = serve_in_thread(create_app({"SANDBOX_TOKEN": TOKEN}))
    try:
        yield handle.url
    finally:
        handle.stop()


def _once(runner: CliRunner, cfg: Path, env: dict[str, str], job: str) -> dict[str, Any]:
    r = runner.invoke(cli, ["--config", str(cfg), "scheduler", "--once", job, "--json"], env=env)
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


@pytest.mark.timeout(120)
def test_sync_jobs_sync_the_files_once_and_skip_them_unchanged(sandbox_url: str, sqlite_url: str, tmp_path: Path,
                                                               runner: CliRunner) -> None:
    catalog, roster = tmp_path / "catalog.csv", tmp_path / "roster.csv"
    shutil.copy(SAMPLES / "catalog.csv", catalog)
    shutil.copy(SAMPLES / "roster.csv", roster)
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[moodle]\nretries = 0\nbackoff_seconds = 0\n'
                   f'[sync]\nreport_dir = "{tmp_path / "reports"}"\nusername_key = "scheduler-test-key"\n'
                   f'[scheduler]\ncatalog_file = "{catalog}"\nroster_file = "{roster}"\n', encoding="utf-8")
    env = {"CREDITBRIDGE_MOODLE_URL": sandbox_url, "CREDITBRIDGE_MOODLE_TOKEN": TOKEN}

    first = _once(runner, cfg, env, "catalog_sync")
    assert first["outcome"] == "ok", first
    assert first["counts"]["created"] > 0 and first["counts"]["file_sha256"]
    assert set(first["counts"]["inbox"]) >= {"processed", "parked"}
    again = _once(runner, cfg, env, "catalog_sync")
    assert again["outcome"] == "skipped" and "catalog.csv unchanged" in again["counts"]["reason"]

    people = _once(runner, cfg, env, "roster_sync")
    assert people["outcome"] == "ok", people
    assert people["counts"]["created"] == 11
    assert _once(runner, cfg, env, "roster_sync")["outcome"] == "skipped"
    # A changed file (one more line ending) is read again; nothing changes in Moodle.
    roster.write_bytes(roster.read_bytes() + b"\r\n")
    changed = _once(runner, cfg, env, "roster_sync")
    assert changed["outcome"] == "ok" and changed["counts"]["created"] == 0

    # Reconciliation asks the same Moodle about the synced courses; nobody has completed anything yet.
    polled = _once(runner, cfg, env, "reconcile")
    assert polled["outcome"] == "ok", polled
    assert polled["counts"]["courses"] > 0 and polled["counts"]["created"] == 0 and "inbox" in polled["counts"]
