"""The shipped rule files, and `creditbridge rules check` on good and bad files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.programmes import (
    ProgrammeNotFound,
    RuleFileError,
    builtin_programmes,
    builtin_rule_path,
    load_programme,
    parse_programme,
)

SHIPPED = ["hf-2021-it2", "jx-2018", "sd-2022", "sd-early", "xh-2015"]


def sd_text() -> str:
    path = builtin_rule_path("sd-2022")
    assert path is not None
    return path.read_text(encoding="utf-8")


def test_every_programme_has_a_rule_file_that_loads() -> None:
    assert builtin_programmes() == SHIPPED
    for code in SHIPPED:
        p = load_programme(code)
        assert p.id == code and p.name and p.version and len(p.hash) == 64
    hf = load_programme("hf-2021-it2")
    assert set(hf.roles) == {"teacher", "workshop_host", "school_admin"}


def test_sd_2022_carries_the_programme_numbers_as_settings() -> None:
    p = load_programme("sd-2022")
    assert p.deadline == date(2022, 12, 31) and p.year == 2022
    assert (p.window.start, p.window.end) == (date(2022, 8, 1), date(2022, 12, 31))
    assert p.topics.max_per_school == 6 and p.topics.mandatory == ["ethics"] and p.topics.free == ["subject"]
    comps = {c.name: c for c in p.roles["teacher"].components}
    assert (comps["electives"].minimum, comps["electives"].cap) == (14, 18)
    assert comps["lesson_cases"].pool is not None and comps["lesson_cases"].pool.n == 3
    assert p.lesson_case_pool() == comps["lesson_cases"].pool
    assert (p.roles["teacher"].total.minimum_hours, p.roles["teacher"].total.maximum_hours) == (24, 28)


def test_load_by_path_and_hash_follows_the_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(sd_text(), encoding="utf-8")
    same = load_programme(f)
    assert same.hash == load_programme("sd-2022").hash
    f.write_text(sd_text().replace('version: "1"', 'version: "2"'), encoding="utf-8")
    changed = load_programme(str(f))
    assert changed.version == "2" and changed.hash != same.hash


def test_unknown_programme() -> None:
    with pytest.raises(ProgrammeNotFound, match="no rule file for programme 'zz-1999'"):
        load_programme("zz-1999")


BAD = [
    ("cap: 18", "cap: 10", "roles.teacher.components[2].cap", "must be ≥ minimum (14)"),
    ("deadline: 2022-12-31", "deadline: 2022-02-30", "deadline", "valid date"),
    ("deadline: 2022-12-31", "deadline: 2022-07-01", "deadline", "on or after the window start"),
    ("max_per_school: 6", "max_per_school: 0", "topics.max_per_school", "greater than or equal to 1"),
    ("measure: hours", "measure: hours", None, None),
    ("school_topics: true", "school_topic: true", "roles.teacher.components[2].school_topic", "unknown setting"),
    ("hours_per_credit: {any: 1}", "hours_per_credit: {any: 0}", "roles.teacher.credits.hours_per_credit",
     "must be > 0"),
    ("minimum_hours: 24", "minimum_hours: 30", "roles.teacher.total.maximum_hours", "must be ≥ minimum_hours (30)"),
]


@pytest.mark.parametrize(("old", "new", "path", "reason"), [b for b in BAD if b[2]])
def test_a_wrong_file_reports_the_path_and_reason_and_never_loads(old: str, new: str, path: str, reason: str) -> None:
    text = sd_text()
    assert old in text
    with pytest.raises(RuleFileError) as e:
        parse_programme(text.replace(old, new, 1), "bad.yaml")
    problems = {p.path: p for p in e.value.problems}
    assert path in problems, problems
    assert reason in problems[path].reason
    assert problems[path].line is not None


def test_every_problem_is_reported_at_once() -> None:
    text = sd_text().replace("cap: 18", "cap: 10").replace("year: 2022", "year: twenty").replace(
        "timezone: Asia/Shanghai", "timezone: Mars/Base")
    with pytest.raises(RuleFileError) as e:
        parse_programme(text, "bad.yaml")
    paths = {p.path for p in e.value.problems}
    assert {"year", "timezone", "roles.teacher.components[2].cap"} <= paths


def test_pass_rate_outside_a_school_role_and_unknown_group_member_are_rejected() -> None:
    sel = "select: {kinds: [elective]}\n"
    text = sd_text().replace(sel, sel + "        measure: pass_rate\n")
    assert "measure: pass_rate" in text
    with pytest.raises(RuleFileError, match="measure pass_rate needs population: school"):
        parse_programme(text, "bad.yaml")
    text = sd_text().replace("    total:\n", "    groups:\n      - {name: general, components: [ethics, nope]}\n"
                                          "    total:\n", 1)
    with pytest.raises(RuleFileError, match="no component or earlier group named 'nope'"):
        parse_programme(text, "bad.yaml")


def test_rules_check_cli_valid_and_invalid(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(sd_text(), encoding="utf-8")
    ok = runner.invoke(cli, ["rules", "check", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "valid (sd-2022 2022, version 1" in ok.output
    ok_json = runner.invoke(cli, ["rules", "check", str(good), "--json"])
    assert json.loads(ok_json.output)["valid"] is True

    bad = tmp_path / "bad.yaml"
    bad.write_text(sd_text().replace("cap: 18", "cap: 10").replace("school_topics: true", "school_topic: true"),
                   encoding="utf-8")
    res = runner.invoke(cli, ["rules", "check", str(bad)])
    assert res.exit_code == 2
    assert "roles.teacher.components[2].cap: must be ≥ minimum (14)" in res.output
    assert "roles.teacher.components[2].school_topic: unknown setting" in res.output
    res_json = runner.invoke(cli, ["rules", "check", str(bad), "--json"])
    assert res_json.exit_code == 2
    doc = json.loads(res_json.stdout)
    assert doc["valid"] is False
    assert {"path": "roles.teacher.components[2].cap", "reason": "must be ≥ minimum (14)"}.items() <= \
        next(p for p in doc["problems"] if p["path"].endswith("cap")).items()

    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nname: [unclosed\n", encoding="utf-8")
    res = runner.invoke(cli, ["rules", "check", str(broken)])
    assert res.exit_code == 2 and "not valid YAML" in res.output and "line" in res.output
