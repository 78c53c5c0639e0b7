"""Issue #17: no other programme's rules, ever. A broken rule file stops a sync before its run is recorded,
its problems listed; a programme with no rule file has no programme rule (not sd-2022's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select
from sync_helpers import Env, make_env, people, write_csv, write_roster

from creditbridge.cli.main import cli
from creditbridge.programmes import RuleFileError, loading, programme_facts
from creditbridge.store.models.core import Teacher

SHIPPED = loading.builtin_rule_path("sd-2022")


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest, sqlite_url: str) -> Env:
    return make_env(tmp_path, request.getfixturevalue("sandbox_server"), sqlite_url)


def _break_sd2022(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped sd-2022 rule file as an operator might leave it after an edit: two invalid values."""
    assert SHIPPED is not None
    text = SHIPPED.read_text(encoding="utf-8")
    assert "max_per_school: 6 " in text and "\nyear: 2022" in text
    broken = tmp_path / "rules" / "sd-2022.yaml"
    broken.parent.mkdir()
    broken.write_text(text.replace("max_per_school: 6 ", "max_per_school: six ")
                      .replace("\nyear: 2022", "\nyear: twenty-two"), encoding="utf-8")
    original = loading.builtin_rule_path
    monkeypatch.setattr(loading, "builtin_rule_path", lambda code: broken if code == "sd-2022" else original(code))
    return broken


def _teachers(env: Env) -> int:
    engine = create_engine(env.env["CREDITBRIDGE_DATABASE_URL"])
    try:
        with engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(Teacher)).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("kind", "extra"), [("roster", ()), ("roster", ("--dry-run",)), ("catalog", ()),
                                             ("topics", ())])
def test_a_broken_rule_file_stops_the_sync_with_its_problems(
        tmp_path: Path, env: Env, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, sandbox_server: Any,
        kind: str, extra: tuple[str, ...]) -> None:
    files = {"roster": lambda: write_roster(tmp_path / "roster.csv", people(3)),
             "catalog": lambda: write_csv(tmp_path / "catalog.csv", ["code", "title", "kind", "hours"],
                                          [("C-1", "Ethics", "required", 6)]),
             "topics": lambda: write_csv(tmp_path / "topics.csv", ["school", "topic"], [("S1", "ethics")])}
    path = files[kind]()
    _break_sd2022(tmp_path, monkeypatch)
    users_before = len(sandbox_server.state.db.execute("SELECT id FROM user").fetchall())

    result = env.run(runner, "sync", kind, str(path), *extra)
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and "rules/sd-2022.yaml: invalid rule file:" in first
    assert "topics.max_per_school" in first and "year" in first  # every problem, by field ...
    assert "line " in first  # ... and line
    assert "Traceback" not in result.output
    # Nothing written: no run recorded (not even an aborted one), no teacher, no Moodle account.
    monkeypatch.undo()
    runs = json.loads(env.run(runner, "sync", "runs", "--json").stdout)
    assert runs == []
    assert _teachers(env) == 0
    assert len(sandbox_server.state.db.execute("SELECT id FROM user").fetchall()) == users_before


def test_the_same_sync_runs_once_the_rule_file_is_mended(
        tmp_path: Path, env: Env, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    roster = write_roster(tmp_path / "roster.csv", people(3))
    _break_sd2022(tmp_path, monkeypatch)
    assert env.run(runner, "sync", "roster", str(roster)).exit_code == 2
    monkeypatch.undo()
    out = env.sync(runner, "roster", roster)
    assert out["created"] == 3 and _teachers(env) == 3


def test_a_programme_without_a_rule_file_gets_no_programme_rule(
        tmp_path: Path, runner: CliRunner, sqlite_url: str, sandbox_server: Any) -> None:
    limits = programme_facts("zz-2030")
    assert (limits.max_topics, limits.mandatory_topics, limits.free_topics, limits.lesson_cases,
            limits.source) == (None, (), (), 0, "no rule file")
    env = make_env(tmp_path, sandbox_server, sqlite_url, extra='programme = "zz-2030"\n')
    # sd-2022 refuses this choice (7 topics, no ethics); a programme with no rules of its own does not.
    seven = write_csv(tmp_path / "topics.csv", ["school", "topic"],
                      [("S1", t) for t in ("class-management", "mental-health", "steam", "pbl", "big-unit",
                                           "labour", "reading")])
    out = env.sync(runner, "topics", seven)
    assert out["created"] == 7 and out["errors"] == []


def test_push_and_report_read_the_rule_file_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = programme_facts("sd-2022")
    assert (sd.source, sd.deadline_in(2022), sd.deadline_in()) == ("rules", sd.deadline, sd.deadline)
    assert sd.name != "sd-2022" and sd.deadline is not None and sd.deadline.year == 2022
    # no rule file: the code and the calendar year (documented), never another programme's
    none = programme_facts("zz-2030")
    assert (none.name, none.name_en, none.deadline, none.source) == ("zz-2030", "zz-2030", None, "no rule file")
    assert str(none.deadline_in(2031)) == "2031-12-31"  # the results' year, as the registry record's end date
    assert str(none.deadline_in()) == "2030-12-31"  # else the year in the code, as the report's deadline
    assert programme_facts("zz-next").deadline_in() is None
    _break_sd2022(tmp_path, monkeypatch)
    with pytest.raises(RuleFileError, match=r"sd-2022\.yaml: invalid rule file: .*max_per_school"):
        programme_facts("sd-2022")


def test_report_stops_on_a_broken_rule_file_and_writes_nothing(
        tmp_path: Path, runner: CliRunner, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    out = tmp_path / "out"
    ok = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(out)])
    assert ok.exit_code == 0, ok.output  # the same report, with the shipped file, is written
    written = sorted(p.name for p in out.iterdir())
    assert written
    _break_sd2022(tmp_path, monkeypatch)
    again = tmp_path / "again"
    result = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(again)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "sd-2022.yaml: invalid rule file:" in result.stderr
    assert "Traceback" not in result.output
    assert not again.exists() or not any(again.iterdir())
