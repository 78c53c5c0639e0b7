"""Files that are not what their name says, and broken rule files: clear errors, nothing half-stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select
from sync_helpers import Env, make_env

from creditbridge.programmes import RuleFileError, programme_facts
from creditbridge.store.models.core import Teacher


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest, sqlite_url: str) -> Env:
    return make_env(tmp_path, request.getfixturevalue("sandbox_server"), sqlite_url)


@pytest.mark.parametrize("kind", ["roster", "catalog", "topics"])
def test_an_xlsx_that_is_no_workbook_is_a_clean_error(tmp_path: Path, env: Env, runner: CliRunner,
                                                     kind: str) -> None:
    bad = tmp_path / f"{kind}.xlsx"
    bad.write_bytes(b"name,school\nnot a zip archive\n")
    result = env.run(runner, "sync", kind, str(bad))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {kind}.xlsx: cannot be opened as an XLSX workbook")
    assert "Traceback" not in result.output
    runs = json.loads(env.run(runner, "sync", "runs", "--json").stdout)
    assert runs[0]["outcome"] == "aborted" and runs[0]["kind"] == kind
    engine = create_engine(env.env["CREDITBRIDGE_DATABASE_URL"])
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(Teacher)).scalar() == 0
    engine.dispose()


def test_programme_without_rule_file_is_named_by_its_id() -> None:
    assert programme_facts("xx-1999").name == "xx-1999"


def test_a_broken_rule_file_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleFileError):
        programme_facts(str(broken))
