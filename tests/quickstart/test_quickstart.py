"""`creditbridge quickstart` as a user runs it: a subprocess in an empty directory, nothing prepared."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shlex
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from creditbridge.pipeline import PIPELINE
from creditbridge.quickstart.run import MARKER
from creditbridge.settings import load_settings
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher


def _quickstart(cwd: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "quickstart", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return proc, time.perf_counter() - started


def _registry_rows(path: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM credit_record").fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("user")
    proc, seconds = _quickstart(cwd, "--teachers", "50", "--json")
    print(f"\nquickstart --teachers 50 --json: {seconds:.1f} s wall (Python start included)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, json.loads(proc.stdout), proc


def test_json_figures_agree_with_what_the_registry_received(first_run: Any) -> None:
    cwd, doc, proc = first_run
    assert proc.stderr.strip() == "" or "Traceback" not in proc.stderr
    assert doc["teachers"] == 50
    assert 0 < doc["passed"] < 50, "a realistic share passes, not everyone and not no one"
    # Leavers of the roster are kept suspended, never evaluated.
    assert doc["passed"] + doc["not_passed"] == 50 - doc["leavers"]
    directory = cwd / "creditbridge-data" / "quickstart"
    rows = _registry_rows(directory / "registry-sim.db")
    active = [r for r in rows if r["state"] == "active"]
    # What creditbridge says was registered is what the registry holds: each teacher once.
    assert doc["credits_registered"] == len(active) == doc["registry_active_records"]
    assert len({r["teacher"] for r in active}) == len(active)
    # The sandbox is set up as docs/moodle.md says: the province's enrolments sent no welcome mail.
    assert doc["welcome_messages"] == 0
    assert all(r["deliveries"] == 1 for r in rows), "no record was delivered twice"
    passed_at_registry = sum(1 for r in active if json.loads(r["payload"])["result"] == "passed")
    assert passed_at_registry == doc["passed"]
    assert doc["rejected"] == 0 and doc["pending"] == 0


def test_every_step_reports_counts_and_time(first_run: Any) -> None:
    _, doc, _ = first_run
    steps = doc["steps"]
    for key in ("province", "catalog", "topics", "roster", "completions", "webhooks", "reconcile", "evaluate",
                "push", "report"):
        assert key in steps, key
        assert steps[key]["seconds"] >= 0
    # The pipeline's steps ran in the pipeline's order (pipeline.py, which the scheduler's jobs share).
    assert [k for k in steps if k in {s.key for s in PIPELINE}] == [s.key for s in PIPELINE]
    assert steps["roster"]["created"] == 50 - doc["leavers"]
    assert steps["roster"]["errors"] == 0
    done = steps["completions"]
    assert done["completions"] > 0 and done["webhooks_lost"] >= 1
    # Every webhook sent arrived signed and became exactly one learning record...
    assert steps["webhooks"]["received"] == done["completions"] - done["webhooks_lost"]
    assert steps["webhooks"]["rejected"] == 0 and steps["webhooks"]["parked"] == 0
    assert steps["webhooks"]["duplicates"] == 0
    # ...reconciliation recovered exactly the lost ones and recorded none of the others twice...
    assert steps["reconcile"]["created"] == done["webhooks_lost"]
    assert steps["reconcile"]["already_known"] == steps["webhooks"]["received"]
    # ...so the store holds one learning record per completion.
    assert steps["webhooks"]["records"] == steps["webhooks"]["received"]
    assert doc["learning_records"] == done["completions"]
    assert steps["evaluate"]["evaluated"] >= 50
    assert doc["seconds"] > 0


def test_report_is_an_html_page_with_content(first_run: Any) -> None:
    _, doc, _ = first_run
    html = Path(doc["report"])
    assert html.is_file() and html.suffix == ".html"
    text = html.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:500].lower()
    assert len(text) > 2000
    assert 'src="http' not in text and "src='http" not in text, "the page must open offline"
    # Chinese by default (report.language = zh-CN): the quickstart's readers are administrators in China.
    assert "<html lang='zh-CN'>" in text and "<h2>各学校合格率</h2>" in text and "<th>合格率</th>" in text
    assert "pass_rate" not in text and "Pass rate" not in text
    wb = load_workbook(doc["report_xlsx"], read_only=True)
    assert wb.sheetnames[:4] == ["汇总", "地市", "区县", "学校"]


def test_written_config_loads_and_points_at_the_quickstart_store(first_run: Any) -> None:
    cwd, doc, _ = first_run
    config = Path(doc["config"])
    settings = load_settings(config, env={})
    assert config.stat().st_mode & 0o077 == 0, "the file holds secrets: readable by its owner only"
    assert settings.webhooks.process_inline is True, "a receiver started with it processes as deliveries come"
    assert settings.database.url == f"sqlite:///{(cwd / 'creditbridge-data' / 'quickstart' / 'state.db').resolve()}"
    # A user can look at the results with it, from any directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    proc = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", "--config", str(config), "intake", "status",
                           "--json"], cwd=cwd.parent, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records"] == doc["learning_records"]


def test_usernames_are_keyed_and_the_store_is_private(first_run: Any) -> None:
    """#14 items 1 and 3: the quickstart names accounts with its own random key, and its store is 0600."""
    cwd, doc, _ = first_run
    key = load_settings(Path(doc["config"]), env={}).sync.username_key.get_secret_value()
    assert len(key) >= 40
    state = cwd / "creditbridge-data" / "quickstart" / "state.db"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    store = open_store(f"sqlite:///{state}", migrate=False)
    with store.session() as s:
        accounts = s.execute(select(Teacher.id_number, Teacher.username).limit(20)).all()
    store.dispose()
    assert accounts
    for id_number, username in accounts:
        keyed = hmac.new(key.encode(), id_number.encode(), hashlib.sha256).hexdigest()[:16]
        unkeyed = hmac.new(b"", id_number.encode(), hashlib.sha256).hexdigest()[:16]
        assert username == f"t{keyed}" != f"t{unkeyed}"


def test_rerun_replaces_the_first_run(first_run: Any) -> None:
    cwd, _, _ = first_run
    directory = cwd / "creditbridge-data" / "quickstart"
    (directory / "notes.txt").write_text("mine", encoding="utf-8")
    proc, _ = _quickstart(cwd, "--teachers", "20", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    assert again["teachers"] == 20
    rows = _registry_rows(directory / "registry-sim.db")
    assert len([r for r in rows if r["state"] == "active"]) == again["credits_registered"]
    assert (directory / "notes.txt").read_text(encoding="utf-8") == "mine", "files it did not write are kept"


def test_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.docx").write_text("do not delete", encoding="utf-8")
    proc, _ = _quickstart(tmp_path, "--dir", str(target), "--teachers", "5", "--json", timeout=60)
    assert proc.returncode == 2
    assert "not empty and was not made by the quickstart" in proc.stderr
    assert (target / "thesis.docx").exists() and not (target / MARKER).exists()


@pytest.mark.parametrize(("directory", "reason"), [("d" * 300, "File name too long"),
                                                  ("/proc/self/qs", "No such file or directory")])
def test_a_dir_that_cannot_be_made_is_one_error_line(tmp_path: Path, directory: str, reason: str) -> None:
    """Attack report item 11: a name too long, or a place no directory can be made, was an OSError traceback."""
    proc, _ = _quickstart(tmp_path, "--dir", directory, "--teachers", "1", "--json", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"error: --dir {directory}: cannot be used: {reason}\n" and proc.stdout == ""
    assert os.listdir(tmp_path) == []  # nothing generated anywhere


def test_human_summary_names_the_report_and_next_commands(tmp_path: Path) -> None:
    proc, _ = _quickstart(tmp_path, "--teachers", "10", "--dir", "qs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    found = re.search(r"(qs/reports/credit-report-\S+\.html)", out)
    assert found and (tmp_path / found.group(1)).is_file()
    for text in ("passed", "registered", "moodle check", "creditbridge init"):
        assert text in out, text
    # Not a terminal: no progress bar escape codes in either stream.
    assert "\x1b[" not in out and "\x1b[" not in proc.stderr
    # The printed `credits explain` command works as printed, from where the user stands.
    line = next(x for x in out.splitlines() if "credits explain" in x)
    # It names the teacher by Moodle username: no ID number anywhere in what the user sees.
    assert not re.search(r"\d{17}[\dX]", out + proc.stderr)
    argv = shlex.split(line[line.index("creditbridge"):])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    explain = subprocess.run([sys.executable, "-m", "creditbridge.cli.main", *argv[1:], "--json"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert explain.returncode == 0, explain.stderr
    result = json.loads(explain.stdout)
    assert result["programme"] == "sd-2022"
    if "has not passed" in line:
        assert result["passed"] is False and result["reasons"]
    else:
        assert result["passed"] is True
