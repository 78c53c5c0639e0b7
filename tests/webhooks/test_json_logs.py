"""`--log-format json` / `logging.format = "json"`: every line a long-running process logs is one JSON object with
time (ISO 8601, UTC), level, logger and message, the job and run id inside a scheduler run, a traceback inside
the object; no full ID number in any of it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from cli_process import run_cli
from webhook_helpers import SECRET, free_port, payload, signed

from creditbridge.records.id_number import find_id_numbers
from creditbridge.store import open_store

ID_NUMBER = "11010519491231002X"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line parsed as one JSON object, with the fields every line has checked."""
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert isinstance(line, dict)
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        when = datetime.fromisoformat(line["time"])
        assert when.utcoffset() == timedelta(0), line["time"]
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    return lines


def test_scheduler_job_logs_as_json_with_run_id_job_and_traceback_inside(sqlite_url: str, tmp_path: Path) -> None:
    # The job fails on a file whose path holds an ID number: the error line and the traceback both quote it.
    missing = tmp_path / ID_NUMBER / "roster.xlsx"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[scheduler]\nroster_file = "{missing}"\n')
    ran = run_cli(cfg, "-vv", "--log-format", "json", "scheduler", "--once", "roster_sync", "--json")
    assert ran.code == 1
    run_id = json.loads(ran.stdout)["run_id"]
    lines = json_lines(ran.stderr)
    assert find_id_numbers(ran.stderr) == [] and find_id_numbers(ran.stdout) == []
    failed = [x for x in lines if x["level"] == "ERROR" and x["logger"] == "creditbridge.scheduler"]
    assert len(failed) == 1 and "roster_sync" in failed[0]["message"] and "1101" in failed[0]["message"]
    assert failed[0]["job"] == "roster_sync" and failed[0]["run_id"] == run_id
    traced = [x for x in lines if "exception" in x]
    assert len(traced) == 1 and traced[0]["exception"].startswith("Traceback (most recent call last):")
    assert "SchedulerError" in traced[0]["exception"] and traced[0]["job"] == "roster_sync"
    # Outside the run: no job fields.
    assert all("job" not in x for x in lines if x["logger"].startswith("alembic"))


def test_the_setting_gives_json_and_text_stays_the_default(sqlite_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[logging]\nformat = "json"\n')
    ran = run_cli(cfg, "-v", "scheduler", "--once", "deadline_warning")
    assert ran.code == 0, ran.stderr
    assert any(x["message"].startswith("job deadline_warning") for x in json_lines(ran.stderr))
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    ran = run_cli(cfg, "-v", "scheduler", "--once", "deadline_warning")
    assert "INFO creditbridge.scheduler: job deadline_warning" in ran.stderr
    assert not ran.stderr.lstrip().startswith("{")


def test_bad_log_format_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[logging]\nformat = "xml"\n')
    ran = run_cli(cfg, "scheduler", "--list")
    assert ran.code == 2 and ran.stderr.startswith("error: ") and "logging.format" in ran.stderr
    ran = run_cli(None, "--log-format", "yaml", "scheduler", "--list")
    assert ran.code == 2 and "--log-format" in ran.stderr


def test_serve_logs_gunicorn_and_access_lines_as_json(sqlite_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    port = free_port()
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n'
                   f'port = {port}\n[logging]\nformat = "json"\n')
    open_store(sqlite_url).dispose()
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "serve",
                                 "--workers", "2"], stdout=o, stderr=e, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.2)
        body, headers = signed(payload())
        assert requests.post(url + "/webhooks/moodle", data=body, headers=headers, timeout=30).status_code == 202
        # An ID number through the access log (the path) and through a refused request's headers.
        assert requests.post(f"{url}/webhooks/moodle/{ID_NUMBER}", data=b"{}", timeout=30).status_code == 404
        requests.post(url + "/webhooks/moodle", data=ID_NUMBER.encode(), headers={"webhook-id": ID_NUMBER},
                      timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    access = json_lines(out.read_text())
    errors = json_lines(err.read_text())
    assert [x["logger"] for x in access] and {x["logger"] for x in access} == {"gunicorn.access"}
    assert any('"POST /webhooks/moodle HTTP/1.1" 202' in x["message"] for x in access)
    assert any("/webhooks/moodle/1101" in x["message"] for x in access)
    assert any(x["message"].startswith("Booting worker") for x in errors)
    assert any(x["message"] == "Shutting down: Master" for x in errors)
    assert find_id_numbers(out.read_text() + err.read_text()) == []


def test_run_passes_the_format_to_both_children_and_exposes_metrics(sqlite_url: str, tmp_path: Path) -> None:
    port, metrics_port, scheduler_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[webhooks]\nport = {port}\nworkers = 1\n'
                   f'[scheduler]\nstandby_retry_seconds = 0.5\n'
                   f'[metrics]\nport = {metrics_port}\nscheduler_port = {scheduler_port}\n')
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg),
                                 "--log-format", "json", "run"], stdout=o, stderr=e, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        for url in (f"http://127.0.0.1:{metrics_port}/metrics", f"http://127.0.0.1:{scheduler_port}/metrics"):
            while True:
                try:
                    r = requests.get(url, timeout=5)
                    if r.status_code == 200 and "creditbridge_store_up 1.0" in r.text:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    lines = json_lines(err.read_text())
    loggers = {x["logger"] for x in lines}
    # The supervisor, the receiver's gunicorn and the scheduler: all JSON, on one stream.
    assert {"creditbridge.runner.supervisor", "gunicorn.error", "creditbridge.scheduler"} <= loggers
    json_lines(out.read_text())
