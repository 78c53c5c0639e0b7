"""Multi-year cycles (issue 6): the pure cycle arithmetic at its boundaries, the cycle id, the year check of
`rules check`, and `credits cycle` / `credits explain` over two yearly programmes of one cycle in the store."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from mapping_helpers import SAMPLES

from creditbridge.cli.main import cli
from creditbridge.mappings.cycle import (
    CycleError,
    CycleSpec,
    YearResult,
    cycle_id,
    cycle_problems,
    cycle_status,
    find_cycle,
    iter_cycle_statuses,
)
from creditbridge.programmes import RuleFileError, builtin_rule_path, load_programme, parse_programme
from creditbridge.records import mask_id_number
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, Teacher
from creditbridge.store.models.credits import CreditResult

SPEC = CycleSpec(id="c-2018-2022", start_year=2018, years=5, floor_hours=300, ceiling_hours=360,
                 must_cover_topics=("ethics", "law", "safety"))


def years(*hours: float, passed: bool = True) -> list[YearResult]:
    return [YearResult(f"p-{2018 + i}", 2018 + i, h, passed) for i, h in enumerate(hours)]


# ------------------------------------------------------------------------------------------- pure functions

@pytest.mark.parametrize(("hours", "met", "short"), [
    ((60, 60, 60, 60, 59.99), False, 0.01),
    ((60, 60, 60, 60, 60), True, 0),  # exactly the floor
    ((60, 60, 60, 60, 60.01), True, 0),
    ((0,), False, 300),
    ((100, 100, 99), False, 1),
])
def test_floor_at_and_around_the_boundary(hours: tuple[float, ...], met: bool, short: float) -> None:
    s = cycle_status(SPEC, "T", years(*hours), ["ethics", "law", "safety"], as_of_year=2022)
    assert (s.floor_met, s.short_hours, s.complete) == (met, short, met)
    floor_reasons = [r for r in s.reasons if "< 300" in r]
    if met:
        assert floor_reasons == []
    else:
        assert floor_reasons == [f"cycle c-2018-2022 hours {s.cycle_hours:g} < 300: short by {short:g}, "
                                 "no year to come"]
        assert f"周期 c-2018-2022 学时 {s.cycle_hours:g} < 300: 差 {short:g}, 周期已无剩余年份" in s.reasons_zh


@pytest.mark.parametrize(("hours", "total", "counted", "reason"), [
    ((100, 100, 100, 60), 360, 360, None),  # exactly the ceiling: nothing cut
    ((100, 100, 100, 60.5), 360.5, 360, "cycle c-2018-2022 hours 360.5 above the ceiling 360: 0.5 not counted"),
    ((100, 100, 100, 100, 100), 500, 360, "cycle c-2018-2022 hours 500 above the ceiling 360: 140 not counted"),
])
def test_ceiling_is_applied(hours: tuple[float, ...], total: float, counted: float, reason: str | None) -> None:
    s = cycle_status(SPEC, "T", years(*hours), [], as_of_year=2022)
    assert (s.hours, s.cycle_hours, s.floor_met) == (total, counted, True)
    cut = [r for r in s.reasons if "ceiling" in r]
    assert cut == ([reason] if reason else [])
    if reason:
        assert any("超过上限 360" in z for z in s.reasons_zh)


def test_a_year_not_passed_counts_only_when_the_cycle_says_any() -> None:
    results = [YearResult("p-2018", 2018, 60, True), YearResult("p-2019", 2019, 45, False)]
    s = cycle_status(SPEC, "T", results, [], as_of_year=2019)
    assert (s.hours, s.cycle_hours, s.short_hours) == (60, 60, 240)
    assert [y["counted"] for y in s.years] == [60, 0]
    assert "2019 (p-2019) not passed: its 45 hours do not count in the cycle" in s.reasons
    assert "2019年 (p-2019) 未合格: 45 学时不计入周期" in s.reasons_zh
    assert "cycle c-2018-2022 hours 60 < 300: short by 240, 3 year(s) to come" in s.reasons
    anyway = cycle_status(CycleSpec(**{**SPEC.__dict__, "counts": "any"}), "T", results, [], as_of_year=2019)
    assert (anyway.cycle_hours, anyway.short_hours) == (105, 195)
    assert not any("not passed" in r for r in anyway.reasons)


@pytest.mark.parametrize(("covered", "have", "missing"), [
    ([], [], ["ethics", "law", "safety"]),
    (["law", "other-topic"], ["law"], ["ethics", "safety"]),  # topics outside the list do not matter
    (["safety", "ethics", "law"], ["ethics", "law", "safety"], []),  # reported in the rule file's order
])
def test_topics_covered_and_missing(covered: list[str], have: list[str], missing: list[str]) -> None:
    s = cycle_status(SPEC, "T", years(60, 60, 60, 60, 60), covered, as_of_year=2022)
    assert (s.topics_covered, s.topics_missing) == (have, missing)
    assert s.complete is (not missing)
    if missing:
        assert f"cycle c-2018-2022 topics not covered yet: {', '.join(missing)}" in s.reasons
        assert f"周期 c-2018-2022 尚未覆盖的专题: {', '.join(missing)}" in s.reasons_zh
    else:
        assert s.reasons == [] and s.reasons_zh == []


@pytest.mark.parametrize(("as_of", "remaining"), [
    (2017, [2018, 2019, 2020, 2021, 2022]), (2018, [2019, 2020, 2021, 2022]), (2021, [2022]), (2022, []), (2030, []),
])
def test_years_still_to_come(as_of: int, remaining: list[int]) -> None:
    s = cycle_status(SPEC, "T", years(60), [], as_of_year=as_of)
    assert s.years_remaining == remaining
    assert any(r.endswith(f"{len(remaining)} year(s) to come" if remaining else "no year to come") for r in s.reasons)


def test_no_floor_no_topics_and_a_result_outside_the_cycle() -> None:
    bare = CycleSpec(id="b-2020-2021", start_year=2020, years=2)
    s = cycle_status(bare, "T", [YearResult("b-2020", 2020, 10, True)], [], as_of_year=2020)
    assert (s.floor_met, s.short_hours, s.complete, s.reasons) == (None, 0, True, [])
    with pytest.raises(ValueError, match="outside cycle b-2020-2021"):
        cycle_status(bare, "T", [YearResult("b-2022", 2022, 10, True)], [], as_of_year=2022)


def jx_text(year: int = 2019, cycle_id_line: str | None = "  id: jx-2018-2022") -> str:
    path = builtin_rule_path("jx-2018")
    assert path is not None
    text = path.read_text(encoding="utf-8")
    assert "id: jx-2018\n" in text and "  id: jx-2018-2022" in text
    text = (text.replace("id: jx-2018\n", f"id: jx-{year}\n").replace("\nyear: 2018", f"\nyear: {year}")
            .replace("2018年", f"{year}年").replace("Jiangxi 2018", f"Jiangxi {year}")
            .replace("{start: 2018-01-01, end: 2018-12-31}", f"{{start: {year}-01-01, end: {year}-12-31}}")
            .replace("deadline: 2018-12-31", f"deadline: {year}-12-31"))
    lines = [ln for ln in text.splitlines() if not ln.startswith("  id: jx-2018-2022")]
    if cycle_id_line is not None:
        lines.insert(lines.index("cycle:") + 1, cycle_id_line)
    return "\n".join(lines) + "\n"


def test_cycle_id_given_or_derived_across_years() -> None:
    jx18 = load_programme("jx-2018")
    assert cycle_id(jx18) == "jx-2018-2022" and jx18.cycle is not None and jx18.cycle.counts == "passed"
    # a file without cycle.id joins the cycle by the derived id: programme id without its year, first and last year
    derived = parse_programme(jx_text(2019, cycle_id_line=None), "jx-2019.yaml")
    assert derived.cycle is not None and derived.cycle.id is None
    assert cycle_id(derived) == "jx-2018-2022"
    odd = parse_programme(jx_text(2019, cycle_id_line=None).replace("id: jx-2019\n", "id: jx-it\n"), "x.yaml")
    assert cycle_id(odd) == "jx-it-2018-2022"  # no year to strip: the whole id
    assert cycle_id(load_programme("sd-2022")) is None


def test_a_bad_cycle_id_is_reported_with_its_path() -> None:
    with pytest.raises(RuleFileError) as e:
        parse_programme(jx_text(2019, cycle_id_line="  id: JX 2018"), "bad.yaml")
    assert [p.path for p in e.value.problems] == ["cycle.id"]


def test_rules_check_reports_a_year_outside_the_cycle(tmp_path: Path, runner: CliRunner) -> None:
    bad = tmp_path / "jx-2023.yaml"
    bad.write_text(jx_text(2023), encoding="utf-8")
    prog = load_programme(bad)  # the schema alone is fine with it ...
    assert [p.path for p in cycle_problems(prog)] == ["year"]  # ... the cycle is not
    res = runner.invoke(cli, ["rules", "check", str(bad), "--json"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    line = next(i for i, ln in enumerate(jx_text(2023).splitlines(), 1) if ln.startswith("year:"))
    assert doc["valid"] is False and doc["problems"] == [{
        "path": "year", "line": line,
        "reason": "2023 is outside cycle jx-2018-2022 (2018–2022): set cycle.start_year and cycle.years to the "
                  "cycle this year belongs to"}]
    res = runner.invoke(cli, ["rules", "check", str(bad)])
    assert res.exit_code == 2 and "year: 2023 is outside cycle jx-2018-2022 (2018–2022)" in res.output
    good = tmp_path / "jx-2022.yaml"
    good.write_text(jx_text(2022), encoding="utf-8")
    res = runner.invoke(cli, ["rules", "check", str(good), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cycle"] == {"id": "jx-2018-2022", "derived": False, "start_year": 2018,
                                               "last_year": 2022}


# ------------------------------------------------------------------------------------------------ the store

A = "360102198602110011"  # both years passed; topics covered over the two years
B = "36010219890514004X"  # 2018 passed, 2019 short (45 hours): 2019 does not count
C = "360102199006150054"  # only in the 2019 roster, no records
ALL_TOPICS = ["national-security", "law", "ethics", "safety", "basics", "methods", "career", "class-management",
              "mental-health", "it", "red-heritage"]


def seed(store: Store) -> None:
    with (SAMPLES / "jx-2018" / "catalog.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    n = 0
    with store.session() as s:
        for prog, prefix in (("jx-2018", "JX18"), ("jx-2019", "JX19")):
            for r in rows:
                s.add(CatalogCourse(programme=prog, code=r["code"].replace("JX18", prefix), title=r["title"],
                                    kind=r["kind"], topic=r["topic"] or None, mode=r["mode"], hours=r["hours"]))
        for prog, people in (("jx-2018", (A, B)), ("jx-2019", (A, B, C))):
            for idn in people:
                s.add(Teacher(programme=prog, id_number=idn, name="教师", school_code="360102001", school_name="学校",
                              county="东湖区", city="南昌市", stage="初中", subject="数学"))

        def add(prog: str, idn: str, code: str, passed: bool | None = True, withdrawn: bool = False,
                hours: float | None = None) -> None:
            nonlocal n
            n += 1
            s.add(LearningRecordRow(programme=prog, teacher=idn, course=code, kind="course", passed=passed,
                                    hours=hours, occurred_at=datetime(int(prog[-4:]), 6, 1, tzinfo=UTC),
                                    source=f"c:{n}", withdrawn_by="c:rev" if withdrawn else None))

        for idn in (A, B):  # 2018: courses 1-6 (60 hours) and both tasks
            for i in range(1, 7):
                add("jx-2018", idn, f"JX18-C-{i:02d}")
            add("jx-2018", idn, "JX18-T-ASSIGN")
            add("jx-2018", idn, "JX18-T-OUTPUT")
        for i in range(7, 13):  # A, 2019: courses 7-12 (60 hours): every topic covered over the cycle
            add("jx-2019", A, f"JX19-C-{i:02d}")
        add("jx-2019", A, "JX19-T-ASSIGN")
        add("jx-2019", A, "JX19-T-OUTPUT")
        add("jx-2019", B, "JX19-C-11", hours=45)  # basics, 45 hours: the year is short of 60
        add("jx-2019", B, "JX19-C-07", withdrawn=True)  # withdrawn: mental-health not covered
        add("jx-2019", B, "JX19-C-08", passed=False)  # failed: it not covered
        # another programme with no rule file: never part of the cycle
        s.add(CreditResult(programme="zz-2019", teacher=A, role="teacher", year=2019, hours=999, credits=0,
                           passed=True, components={}, reasons=[], reasons_zh=[], rule_version="1", rule_hash="x",
                           result_hash="x"))


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(path)


def test_credits_cycle_over_two_yearly_programmes(config: str, db_url: str, tmp_path: Path,
                                                  runner: CliRunner) -> None:
    store = open_store(db_url)
    try:
        seed(store)
    finally:
        store.dispose()
    jx19 = tmp_path / "jx-2019.yaml"
    jx19.write_text(jx_text(2019), encoding="utf-8")
    for prog in ("jx-2018", str(jx19)):
        res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--programme", prog])
        assert res.exit_code == 0, res.output

    base = ["--config", config, "credits", "cycle"]
    res = runner.invoke(cli, [*base, "--programme", "jx-2018", "--rules", str(jx19), "--as-of", "2019", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # masked, as in evaluate --json; sorted by the full number
    assert [r["teacher"] for r in out] == [mask_id_number(t) for t in sorted([A, B, C])]
    got = {t: next(r for r in out if r["teacher"] == mask_id_number(t)) for t in (A, B, C)}
    a, b, c = got[A], got[B], got[C]
    assert [(y["year"], y["programme"], y["hours"], y["passed"], y["counted"]) for y in a["years"]] == [
        (2018, "jx-2018", 60, True, 60), (2019, "jx-2019", 60, True, 60)]
    assert (a["cycle"], a["cycle_hours"], a["floor_met"], a["short_hours"]) == ("jx-2018-2022", 120, False, 180)
    assert a["years_remaining"] == [2020, 2021, 2022] and a["topics_missing"] == []
    assert a["topics_covered"] == ALL_TOPICS  # 999 hours of zz-2019 are not in the cycle
    assert a["reasons"] == ["cycle jx-2018-2022 hours 120 < 300: short by 180, 3 year(s) to come"]
    assert [(y["year"], y["hours"], y["counted"]) for y in b["years"]] == [(2018, 60, 60), (2019, 45, 0)]
    assert (b["hours"], b["cycle_hours"], b["short_hours"]) == (60, 60, 240)
    assert "2019 (jx-2019) not passed: its 45 hours do not count in the cycle" in b["reasons"]
    # 2018's six topics and 2019's basics (a passed record, though the year failed); not the withdrawn or failed ones
    assert b["topics_covered"] == ["national-security", "law", "ethics", "safety", "basics", "methods",
                                   "class-management"]
    assert b["topics_missing"] == ["career", "mental-health", "it", "red-heritage"]
    assert (c["hours"], c["short_hours"], c["topics_covered"]) == (0, 300, [])
    assert "warning: programme zz-2019 has stored results but no rule file" in res.stderr

    # the same cycle asked for by the other year's file (jx-2018 comes from the shipped rules)
    res = runner.invoke(cli, [*base, "--programme", str(jx19), "--as-of", "2019", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == out

    # the human table: ID numbers masked, a year not counted in parentheses
    res = runner.invoke(cli, [*base, "--programme", "jx-2018", "--rules", str(jx19), "--as-of", "2019"])
    assert res.exit_code == 0, res.output
    assert all(x not in res.stdout for x in (A, B, C))
    lines = res.stdout.splitlines()
    assert lines[0].startswith("cycle jx-2018-2022: 2018–2022, floor 300 hours") and "jx-2019 (2019)" in lines[0]
    row_b = next(ln for ln in lines if ln.startswith("3601************4X"))
    assert row_b.split()[:5] == ["3601************4X", "60", "(45)", "-", "-"]
    assert "short 240" in row_b and "7/11" in row_b and "career, mental-health, it, red-heritage" in row_b
    row_a = next(ln for ln in lines if ln.startswith("3601************11"))
    assert "short 180" in row_a and "11/11" in row_a
    assert lines[-1].startswith("3 teacher(s): floor met 0, complete (floor and topics) 0")

    # explain shows the cycle under the yearly result
    res = runner.invoke(cli, ["--config", config, "credits", "explain", B, "--programme", "jx-2019",
                              "--rules", str(jx19)])
    assert res.exit_code == 0, res.output
    # in report.language: zh-CN by default...
    assert B not in res.output and "周期 jx-2018-2022" in res.output and "cycle" not in res.output
    assert "45 (不计)" in res.output and "否, 差 240" in res.output
    # ...or English
    english = tmp_path / "english.toml"
    english.write_text(Path(config).read_text(encoding="utf-8") + '[report]\nlanguage = "en"\n', encoding="utf-8")
    res = runner.invoke(cli, ["--config", str(english), "credits", "explain", B, "--programme", "jx-2019",
                              "--rules", str(jx19)])
    assert res.exit_code == 0, res.output
    assert "cycle jx-2018-2022" in res.output and "周期" not in res.output
    assert "45 (not counted)" in res.output and "no, short by 240" in res.output
    # without --programme both yearly results are shown, their shared cycle once
    res = runner.invoke(cli, ["--config", config, "credits", "explain", B, "--rules", str(jx19)])
    assert res.exit_code == 0, res.output
    assert res.output.count("jx-2018 · 教师") == 1 and res.output.count("jx-2019 · 教师") == 1
    assert res.output.count("周期 jx-2018-2022 · 2018–2022") == 1  # the table's title (reasons name it too)
    res = runner.invoke(cli, ["--config", config, "credits", "explain", B, "--programme", "jx-2019",
                              "--rules", str(jx19), "--json"])
    assert res.exit_code == 0, res.output
    cycle = json.loads(res.stdout)["cycle"]
    # the same as `credits cycle`, but seen from this year (after 2022): no year to come
    seen_now = ("years_remaining", "reasons", "reasons_zh")
    assert {k: v for k, v in cycle.items() if k not in seen_now} == {k: v for k, v in b.items() if k not in seen_now}
    assert cycle["years_remaining"] == []
    assert "cycle jx-2018-2022 hours 60 < 300: short by 240, no year to come" in cycle["reasons"]
    assert "2019年 (jx-2019) 未合格: 45 学时不计入周期" in cycle["reasons_zh"]
    res = runner.invoke(cli, ["--config", config, "credits", "explain", A, "--programme", "jx-2018", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # without --rules jx-2019's file is unknown: the cycle so far is 2018 alone
    assert doc["hours"] == 60 and [y["year"] for y in doc["cycle"]["years"]] == [2018]
    assert "cycle" not in json.loads(runner.invoke(cli, ["--config", config, "credits", "explain", A, "--programme",
                                                         "zz-2019", "--json"]).stdout)


def test_batches_and_disagreeing_yearly_files(store: Store, tmp_path: Path) -> None:
    from creditbridge.mappings.service import evaluate_store

    seed(store)
    jx19 = tmp_path / "jx-2019.yaml"
    jx19.write_text(jx_text(2019), encoding="utf-8")
    evaluate_store(None, store, programme="jx-2018")
    evaluate_store(None, store, programme=str(jx19))
    found = find_cycle(store, "jx-2018", [jx19])
    assert found.spec.programmes == (("jx-2018", 2018), ("jx-2019", 2019))
    one = [s.as_json() for s in iter_cycle_statuses(store, found.spec, 2019, batch=1)]
    many = [s.as_json() for s in iter_cycle_statuses(store, found.spec, 2019)]
    assert one == many and len(one) == 3
    only_b = [s.teacher for s in iter_cycle_statuses(store, found.spec, 2019, teachers=[B])]
    assert only_b == [B]

    other = tmp_path / "jx-2019-other.yaml"
    other.write_text(jx_text(2019).replace("floor_hours: 300", "floor_hours: 360"), encoding="utf-8")
    with pytest.raises(CycleError, match=r"cycle\.floor_hours differs from jx-2018's"):
        find_cycle(store, "jx-2018", [other])
    with pytest.raises(CycleError, match="declares no cycle"):
        find_cycle(store, "sd-2022")
