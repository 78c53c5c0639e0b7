"""Hostile review: `--json` left out the run's notes. A report directory that cannot be written showed as
`"report": null` with no reason (the text output says "note: report not written: ..."), and the other notes
(held suspensions explained, teachers short of lesson cases, audience cohorts made again) reached only people
reading the text output or the workbook. The JSON object now carries them as `notes`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sync_helpers import Env, people, write_roster


def test_json_says_why_the_report_was_not_written(tmp_path: Path, env: Env, runner: CliRunner) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the report directory should be", encoding="utf-8")
    env.config.write_text(env.config.read_text(encoding="utf-8").replace(
        str(env.report_dir.as_posix()), (blocker / "reports").as_posix()), encoding="utf-8")
    result = env.run(runner, "sync", "roster", str(write_roster(tmp_path / "r.csv", people(2))), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["created"] == 2 and doc["report"] is None
    assert any(n.startswith("report not written: ") for n in doc["notes"]), doc
