"""programme_facts, the one way sync, push and the report read a programme: the same facts whether a shipped
programme is named by its id or by its file's path, agreeing with its rule file; no rule file, no rule."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest

from creditbridge.programmes import (
    ProgrammeFacts,
    ProgrammeNotFound,
    RuleFileError,
    builtin_programmes,
    builtin_rule_path,
    load_programme,
    programme_facts,
)


@pytest.mark.parametrize("code", builtin_programmes())
def test_the_facts_of_each_shipped_programme_are_its_rule_files(code: str) -> None:
    p = load_programme(code)
    facts = programme_facts(code)
    pool = p.lesson_case_pool()
    assert (facts.code, facts.source, facts.name, facts.name_en, facts.deadline) == \
        (code, "rules", p.name, p.name_en or p.name, p.deadline)
    assert (facts.max_topics, facts.mandatory_topics, facts.free_topics) == \
        (p.topics.max_per_school, tuple(p.topics.mandatory), tuple(p.topics.free))
    assert facts.lesson_cases == (pool.n if pool else 0)
    assert facts.by_city == (pool is not None and "city" in pool.match)
    assert facts.deadline_in() == facts.deadline_in(1999) == p.deadline  # a rule file's deadline, whatever the year
    path = builtin_rule_path(code)
    assert path is not None and path.parent.name == "rules" and path.parent.parent.name == "programmes"
    assert programme_facts(path) == ProgrammeFacts(**{**vars(facts), "code": str(path)})


def test_sd_2022_in_numbers() -> None:
    sd = programme_facts("sd-2022")
    assert (sd.max_topics, sd.mandatory_topics, sd.free_topics, sd.lesson_cases, sd.deadline) == \
        (6, ("ethics",), ("subject",), 3, date(2022, 12, 31))


def test_a_programme_without_a_rule_file_has_no_rule_and_is_named_by_its_code() -> None:
    facts = programme_facts("zz-2030")
    assert facts == ProgrammeFacts("zz-2030", "no rule file", "zz-2030", "zz-2030")
    assert (facts.max_topics, facts.mandatory_topics, facts.free_topics, facts.lesson_cases, facts.by_city) == \
        (None, (), (), 0, False)
    assert facts.deadline_in(2031) == date(2031, 12, 31)
    assert facts.deadline_in() == date(2030, 12, 31)  # the year the code names
    assert programme_facts("zz-next").deadline_in() is None
    assert programme_facts("zz-120301").deadline_in() is None  # digits inside a longer number are no year


def test_a_broken_or_missing_rule_file_raises_and_nothing_stands_in(tmp_path: Path) -> None:
    shipped = builtin_rule_path("sd-2022")
    assert shipped is not None
    broken = tmp_path / "sd-2022.yaml"
    broken.write_text(shipped.read_text(encoding="utf-8").replace("max_per_school: 6 ", "max_per_school: -1 "),
                      encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"topics\.max_per_school") as e:
        programme_facts(broken)
    assert [p.path for p in e.value.problems] == ["topics.max_per_school"]
    with pytest.raises(ProgrammeNotFound, match="not found"):
        programme_facts(tmp_path / "gone.yaml")


def test_the_rule_files_ship_with_the_package() -> None:
    """A non-editable install (a wheel) carries only what pyproject declares: the package and its rule files."""
    root = Path(__file__).parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "creditbridge.programmes" in config["packages"]
    globs = config["package-data"]["creditbridge.programmes"]
    data = {p for p in (root / "programmes").rglob("*")
            if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert sorted(p.stem for p in data) == builtin_programmes()
    assert data == {p for g in globs for p in (root / "programmes").glob(g)}  # setuptools' globs, as it reads them
