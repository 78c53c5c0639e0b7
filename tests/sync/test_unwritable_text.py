"""A roster name or school holding characters XML 1.0 cannot hold (U+FFFE, U+FFFF; attack report item 1): the
sync run completes and is closed, its report and the credit report are written with the characters escaped
(`_xFFFF_`, the way Excel writes them), and a report writer that fails anyway never leaves a run "running"."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sync_helpers import Env, Person, id_number, make_env, write_roster

from creditbridge.i18n import words
from creditbridge.sync import service

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default

Run = Callable[..., subprocess.CompletedProcess[str]]
NAME, SCHOOL = "张\uffff三", "第\ufffe一中学"


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
    # The same store the creditbridge_cli fixture's child process uses.
    return make_env(tmp_path, request.getfixturevalue("sandbox_server"), f"sqlite:///{tmp_path / 'store.db'}")


def _cli(env: Env, creditbridge_cli: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return creditbridge_cli("--config", str(env.config), *args, **env.env)


def _roster(tmp_path: Path) -> Path:
    return write_roster(tmp_path / "roster.csv", [Person(id_number(1), NAME, school_name=SCHOOL),
                                                   Person(id_number(2), "李四")], encoding="utf-8")


def test_a_sync_run_and_the_credit_report_with_such_a_name(tmp_path: Path, env: Env, creditbridge_cli: Run) -> None:
    proc = _cli(env, creditbridge_cli, "sync", "roster", str(_roster(tmp_path)), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["created"] == 2 and not outcome["errors"] and outcome["report"], outcome
    (run,) = json.loads(_cli(env, creditbridge_cli, "sync", "runs", "--json").stdout)
    assert run["outcome"] == "ok" and run["finished_at"] and run["report"] == outcome["report"]
    plan = load_workbook(run["report"], read_only=True)[ZH("sync.sheet.plan")]
    names = {row[3] for row in plan.iter_rows(min_row=2, values_only=True)}
    assert "张_xFFFF_三" in names and "李四" in names

    out = tmp_path / "credit-report"
    proc = _cli(env, creditbridge_cli, "report", "--out", str(out), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    (xlsx,) = out.glob("*.xlsx")
    schools = load_workbook(xlsx, read_only=True)[ZH("sheet.schools")]
    assert "第_xFFFE_一中学" in {row[3] for row in schools.iter_rows(min_row=2, values_only=True)}
    (html,) = out.glob("*.html")
    assert SCHOOL in html.read_text(encoding="utf-8")  # legal in HTML text; escaped by html.escape otherwise


def test_a_report_writer_that_fails_anyway_leaves_the_run_closed(tmp_path: Path, env: Env, runner: CliRunner,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> Path:
        raise ValueError("All strings must be XML compatible")

    monkeypatch.setattr(service, "write_report", broken)
    result = env.run(runner, "sync", "roster", str(_roster(tmp_path)))
    assert result.exit_code == 0 and "created 2" in result.stdout, result.output
    assert "note: report not written: ValueError: All strings must be XML compatible\n" in result.stderr
    assert "report:" not in result.stdout
    (run,) = json.loads(env.run(runner, "sync", "runs", "--json").stdout)
    assert run["outcome"] == "ok" and run["finished_at"] and run["report"] is None
