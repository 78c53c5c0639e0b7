"""`creditbridge scheduler --once JOB / --list` as an operator drives them, with the real flows behind the jobs
(outbox push to the registry simulator, the mappings evaluator, deadline warnings)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from registry_helpers import SECRET, add_teachers, id_number, put_results, running_sim
from sqlalchemy import select

from creditbridge.cli.main import cli
from creditbridge.scheduler import JOB_IDS, deadline_warning_job, run_claimed
from creditbridge.settings import load_settings
from creditbridge.store import Store
from creditbridge.store.locks import job_lock_for
from creditbridge.store.models.scheduler import JobRun


def _config(tmp_path: Path, url: str, extra: str = "") -> Path:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[registry]\nurl = "{extra or "http://127.0.0.1:9"}"\n'
                   f'backoff_seconds = 0.01\nretries = 1\n', encoding="utf-8")
    return cfg


def _invoke(runner: CliRunner, cfg: Path, *args: str) -> tuple[int, str, str]:
    r = runner.invoke(cli, ["--config", str(cfg), *args], env={"CREDITBRIDGE_REGISTRY_SECRET": SECRET})
    return r.exit_code, r.stdout, r.stderr


def test_once_push_sends_to_the_registry_and_is_recorded(store: Store, tmp_path: Path, runner: CliRunner) -> None:
    add_teachers(store, list(range(5)))
    put_results(store, [{"teacher": id_number(i)} for i in range(5)])
    with running_sim(tmp_path) as sim:
        cfg = _config(tmp_path, store.url, sim.url)
        code, out, err = _invoke(runner, cfg, "scheduler", "--once", "push", "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["outcome"] == "ok" and doc["counts"]["acknowledged"] == 5 and doc["counts"]["pending"] == 0
        assert len(sim.rows()) == 5
        code, out, _ = _invoke(runner, cfg, "scheduler", "--once", "push", "--json")
        assert json.loads(out)["counts"]["sent"] == 0  # acknowledged records are never sent again
        code, out, _ = _invoke(runner, cfg, "scheduler", "--list", "--json")
    assert code == 0
    listing = json.loads(out)
    assert [j["id"] for j in listing["jobs"]] == list(JOB_IDS)
    assert listing["active_scheduler"] is None
    jobs = {j["id"]: j for j in listing["jobs"]}
    assert jobs["push"]["last_run"]["outcome"] == "ok" and jobs["push"]["last_run"]["manual"] is True
    assert jobs["push"]["cron"] == "0 5 * * *" and jobs["push"]["next_run"].endswith("+08:00")
    assert jobs["roster_sync"]["last_run"] is None
    with store.session() as s:
        assert [r.outcome for r in s.scalars(select(JobRun).where(JobRun.job_id == "push"))] == ["ok", "ok"]


def test_once_push_failing_exits_1_and_records_the_failure(sqlite_url: str, tmp_path: Path,
                                                          runner: CliRunner) -> None:
    cfg = _config(tmp_path, sqlite_url)
    r = runner.invoke(cli, ["--config", str(cfg), "scheduler", "--once", "push"], env={})
    assert r.exit_code == 1
    assert "push: failed" in r.stdout and "registry.secret" in r.stdout
    code, out, _ = _invoke(runner, cfg, "scheduler", "--list", "--json")
    assert code == 0
    push = {j["id"]: j for j in json.loads(out)["jobs"]}["push"]
    assert push["last_run"]["outcome"] == "failed" and "registry.secret" in push["last_run"]["error"]


def test_sync_jobs_skip_when_the_file_is_unset_or_unchanged(sqlite_url: str, tmp_path: Path,
                                                            runner: CliRunner) -> None:
    cfg = _config(tmp_path, sqlite_url)
    code, out, _ = _invoke(runner, cfg, "scheduler", "--once", "roster_sync", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["outcome"] == "skipped" and doc["counts"]["reason"] == "scheduler.roster_file is not set"

    roster = tmp_path / "roster.csv"
    cfg.write_text(cfg.read_text(encoding="utf-8") + f'[scheduler]\nroster_file = "{tmp_path / "missing.csv"}"\n',
                   encoding="utf-8")
    code, out, _ = _invoke(runner, cfg, "scheduler", "--once", "roster_sync", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["outcome"] == "failed" and "scheduler.roster_file: file not found" in doc["error"]

    # The file as the last successful run saw it: nothing to do.
    roster.write_bytes("身份证号,姓名\n".encode("gb18030"))
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("missing.csv", "roster.csv"), encoding="utf-8")
    settings = load_settings(cfg, env={})
    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    with store.session() as s:
        s.add(JobRun(job_id="roster_sync", scheduled_at=datetime(2026, 1, 1, tzinfo=UTC), outcome="ok",
                     instance="earlier", counts={"file_sha256": hashlib.sha256(roster.read_bytes()).hexdigest()}))
    store.dispose()
    assert settings.scheduler.roster_file.endswith("roster.csv")
    code, out, _ = _invoke(runner, cfg, "scheduler", "--once", "roster_sync", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["outcome"] == "skipped" and "roster.csv unchanged" in doc["counts"]["reason"]


def test_once_evaluate_runs_the_mappings_evaluator(store: Store, tmp_path: Path, runner: CliRunner) -> None:
    add_teachers(store, [1, 2, 3])
    cfg = _config(tmp_path, store.url)
    code, out, err = _invoke(runner, cfg, "scheduler", "--once", "evaluate", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["outcome"] == "ok", doc
    assert doc["counts"]["evaluated"] >= 3 and doc["counts"]["passed"] == 0  # no learning records: none passed


def test_deadline_warning_job_logs_who_has_not_passed_masked(store: Store, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    add_teachers(store, [1, 2, 3, 4])
    put_results(store, [{"teacher": id_number(1)}, {"teacher": id_number(2), "passed": False, "credits": 10}])
    settings = load_settings(None, env={}, overrides={"database": {"url": store.url}})
    caplog.set_level(logging.INFO)
    # Eleven days before sd-2022's registration deadline (31 Dec 2022), inside the 14-day window.
    result = run_claimed(settings, store, "deadline_warning", datetime(2022, 12, 20, 1, tzinfo=UTC),
                         deadline_warning_job, instance="test")
    assert result is not None and result["outcome"] == "ok"
    assert result["counts"] == {"programmes": 1, "warnings": 1, "not_passed": 3, "not_acknowledged": 2}
    text = caplog.text
    assert "sd-2022: registration deadline 2022-12-31 in 11 day(s): 3 teacher(s) not passed, 2 record(s) not " \
           "acknowledged" in text
    for n in (1, 2, 3, 4):
        assert id_number(n) not in text  # never in full
    assert f"{id_number(3)[:4]}" in text and "教师3" in text and "not evaluated" in text
    # Outside the window: an info line, no warning.
    caplog.clear()
    result = run_claimed(settings, store, "deadline_warning", datetime(2022, 11, 1, tzinfo=UTC),
                         deadline_warning_job, instance="test")
    assert result is not None and result["counts"]["warnings"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_once_left_running_by_a_dead_process_is_marked_interrupted_by_the_next_once(
        store: Store, tmp_path: Path, runner: CliRunner) -> None:
    """An operator's `--once` whose process died (SIGKILL, a closed terminal) stayed `running` for ever; it held
    its job's lock, so the next run of the job finds the lock free and marks it interrupted."""
    when = datetime.now(UTC)
    with store.session() as s:
        s.add(JobRun(job_id="push", scheduled_at=when, started_at=when, outcome="running", instance="gone:1",
                     manual=True))
    with running_sim(tmp_path) as sim:
        code, out, err = _invoke(runner, _config(tmp_path, store.url, sim.url), "scheduler", "--once", "push",
                                 "--json")
    assert code == 0, err
    assert json.loads(out)["outcome"] == "ok"
    with store.session() as s:
        runs = {r.instance: (r.outcome, r.error) for r in s.scalars(select(JobRun).where(JobRun.job_id == "push"))}
    assert runs.pop("gone:1") == ("interrupted", "the process running it stopped before it finished")
    assert [outcome for outcome, _ in runs.values()] == ["ok"]


def test_once_while_another_run_of_the_job_holds_its_lock_is_skipped_naming_it(
        store: Store, tmp_path: Path, runner: CliRunner) -> None:
    held = job_lock_for(store, "push", "job push")
    assert held is not None and held.acquire()
    try:
        code, out, err = _invoke(runner, _config(tmp_path, store.url), "scheduler", "--once", "push", "--json")
    finally:
        held.release()
    doc = json.loads(out)
    assert doc["outcome"] == "skipped", (code, out, err)
    assert "still going" in doc["counts"]["reason"] and "job push" in doc["counts"]["reason"]
