"""What `push` sends of a programme comes from its rule file, through creditbridge.programmes, or from nothing:
the name and the deadline of sd-2022's file; a programme with no rule file its code and its results' calendar
year; a broken rule file stops the push, its problems listed, with nothing built or sent (issue #17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from registry_helpers import SECRET, add_teachers, id_number, put_results, running_sim
from sqlalchemy import func, select

from creditbridge.cli.main import cli
from creditbridge.programmes import builtin_rule_path, load_programme, loading
from creditbridge.store import Store, open_store
from creditbridge.store.models.registry import RegistrySubmission


def _push(runner: CliRunner, cfg: Path) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["--config", str(cfg), "push", "--json"])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cfg_and_store(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Path, Store]]:
    store = open_store(sqlite_url)
    add_teachers(store, [1])
    add_teachers(store, [2], programme="zz-2030")
    put_results(store, [{"teacher": id_number(1)},  # sd-2022, year 2022
                        {"teacher": id_number(2), "programme": "zz-2030", "year": 2031}])
    yield tmp_path / "creditbridge.toml", store
    store.dispose()


def test_push_sends_the_rule_files_name_and_deadline_or_the_code_and_calendar_year(
        tmp_path: Path, runner: CliRunner, sqlite_url: str, cfg_and_store: tuple[Path, Store]) -> None:
    cfg, store = cfg_and_store
    with running_sim(tmp_path) as sim:
        cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "{sim.url}"\nsecret = "{SECRET}"\n',
                       encoding="utf-8")
        code, out, err = _push(runner, cfg)
        assert code == 0, err
        assert json.loads(out)["sent"] == 2  # the simulator knows sd-2022 only: it acknowledges one, rejects one
        assert [r["payload"]["programme_code"] for r in sim.rows()] == ["sd-2022"]
    with store.session() as s:
        sent = {r.programme: r.payload for r in s.scalars(select(RegistrySubmission))}
    sd = load_programme("sd-2022")
    assert (sent["sd-2022"]["programme_name"], sent["sd-2022"]["start_date"], sent["sd-2022"]["end_date"]) == \
        (sd.name, "2022-01-01", sd.deadline.isoformat())
    # No rule file: the code and the results' calendar year (documented), never another programme's name or dates.
    assert (sent["zz-2030"]["programme_name"], sent["zz-2030"]["start_date"], sent["zz-2030"]["end_date"]) == \
        ("zz-2030", "2031-01-01", "2031-12-31")


def test_a_broken_rule_file_stops_the_push_with_its_problems_and_sends_nothing(
        tmp_path: Path, runner: CliRunner, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        cfg_and_store: tuple[Path, Store]) -> None:
    cfg, store = cfg_and_store
    shipped = builtin_rule_path("sd-2022")
    assert shipped is not None
    broken = tmp_path / "rules" / "sd-2022.yaml"
    broken.parent.mkdir()
    text = shipped.read_text(encoding="utf-8")
    assert "max_per_school: 6 " in text
    broken.write_text(text.replace("max_per_school: 6 ", "max_per_school: six "), encoding="utf-8")
    original = loading.builtin_rule_path
    monkeypatch.setattr(loading, "builtin_rule_path", lambda c: broken if c == "sd-2022" else original(c))
    with running_sim(tmp_path) as sim:
        cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "{sim.url}"\nsecret = "{SECRET}"\n',
                       encoding="utf-8")
        code, _out, err = _push(runner, cfg)
        assert code == 2, err
        assert err.startswith("error: ") and "sd-2022.yaml: invalid rule file: topics.max_per_school" in err
        assert "Traceback" not in err
        assert sim.rows() == []  # not even the other programme's result went out with made-up dates
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(RegistrySubmission)) == 0
