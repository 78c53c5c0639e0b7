"""jx-2018, hf-2021-it2 (teacher, workshop host, school admin) and xh-2015, table-driven at the boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mapping_helpers import SCHOOL, Record, plan_result, rec, sample_catalog

from creditbridge.mappings.evaluate import Person, Rules, SchoolStats, as_tuple, evaluate_all
from creditbridge.programmes import Programme, builtin_rule_path, load_programme, parse_programme

JX = datetime(2018, 6, 1, tzinfo=UTC)
HF = datetime(2021, 9, 1, tzinfo=UTC)
XH = datetime(2015, 10, 1, tzinfo=UTC)


def jx_records(hours: float, assignment: bool = True, output: bool = True) -> list[Record]:
    out = [rec("JX18-C-01", hours=hours, at=JX)]
    if assignment:
        out.append(rec("JX18-T-ASSIGN", at=JX))
    if output:
        out.append(rec("JX18-T-OUTPUT", at=JX))
    return out


@pytest.mark.parametrize(("hours", "assignment", "output", "credits", "passed"), [
    (59, True, True, 0, False),
    (60, True, True, 3, True),
    (61, True, True, 3, True),
    (120, True, True, 3, True),  # at most 3 a year
    (60, False, True, 0, False),  # assignment not passed: no credit that year
    (60, True, False, 0, False),
])
def test_jx_60_hours_a_year_and_tasks(hours: float, assignment: bool, output: bool, credits: float,
                                      passed: bool) -> None:
    r = plan_result("jx-2018", "teacher", jx_records(hours, assignment, output))
    assert (r.credits, r.passed, r.hours) == (credits, passed, hours)
    if not assignment:
        assert "assignment JX18-T-ASSIGN not passed" in r.reasons
    if hours < 60:
        assert "online study hours 59 < 60" in r.reasons


def _jx_without_minimum() -> Programme:
    """jx-2018 with the 60-hour minimum set to 0, to see the hour → credit ratio below 60 hours."""
    path = builtin_rule_path("jx-2018")
    assert path is not None
    text = path.read_text(encoding="utf-8")
    assert "minimum: 60  " in text and "minimum_hours: 60" in text
    text = text.replace("minimum: 60  ", "minimum: 0  ").replace("minimum_hours: 60", "minimum_hours: 0")
    return parse_programme(text, "jx-variant")


@pytest.mark.parametrize(("hours", "credits"), [(0, 0), (19, 0), (19.99, 0), (20, 1), (39, 1), (40, 2), (59.99, 2),
                                                (60, 3), (100, 3)])
def test_jx_20_hours_make_1_credit_rounded_down(hours: float, credits: int) -> None:
    prog = _jx_without_minimum()
    rules = Rules(prog, sample_catalog("jx-2018"))
    r = rules.plan("teacher").evaluate("x", [as_tuple(x) for x in jx_records(hours)])
    assert r.credits == credits and r.passed


def hf_teacher(minutes: float = 600, discussions: int = 1, school_score: float = 20, evidence: float = 20,
               self_test: bool = True, plan: bool = True) -> list[Record]:
    out: list[Record] = []
    if self_test:
        out.append(rec("HF21-T-SELFTEST", at=HF))
    if plan:
        out.append(rec("HF21-T-PLAN", at=HF))
    if minutes:
        out += [rec("HF21-C-A1", passed=None, kind="time", minutes=minutes / 2, at=HF),
                rec("HF21-C-B3", passed=None, kind="time", minutes=minutes / 2, at=HF)]
    out += [rec("HF21-T-DISCUSS", activity=f"d{i}", kind="activity", at=HF) for i in range(discussions)]
    if school_score is not None:
        out.append(rec("HF21-T-SCHOOL", passed=None, kind="score", score=school_score, at=HF))
    if evidence is not None:
        out.append(rec("HF21-X-EVIDENCE", passed=None, kind="score", score=evidence, at=HF))
    return out


@pytest.mark.parametrize(("minutes", "viewing"), [(0, 0), (300, 15), (599, 29.95), (600, 30), (601, 30), (1200, 30)])
def test_hf_viewing_is_proportional_up_to_600_minutes(minutes: float, viewing: float) -> None:
    r = plan_result("hf-2021-it2", "teacher", hf_teacher(minutes=minutes))
    assert r.components["viewing"] == viewing
    assert r.points == 40 + viewing


@pytest.mark.parametrize(("minutes", "points", "passed", "hours", "credits"), [
    (400, 60, True, 60, 60),  # exactly the pass mark
    (399, 59.95, False, 0, 0),
    (600, 70, True, 60, 60),  # the maximum
])
def test_hf_teacher_pass_mark_60_and_registered_hours(minutes: float, points: float, passed: bool, hours: float,
                                                      credits: float) -> None:
    r = plan_result("hf-2021-it2", "teacher", hf_teacher(minutes=minutes))
    assert (r.points, r.passed, r.hours, r.credits) == (points, passed, hours, credits)
    if not passed:
        assert "points 59.95 < pass mark 60" in r.reasons


def test_hf_teacher_items_caps_and_external_evidence() -> None:
    r = plan_result("hf-2021-it2", "teacher", hf_teacher(discussions=3, school_score=25))
    assert r.components["discussion"] == 5 and r.components["school_based"] == 20 and r.points == 70
    short = plan_result("hf-2021-it2", "teacher", hf_teacher(evidence=19))
    assert not short.passed and short.points == 70
    assert "micro-capability evidence credits score 19 < 20" in short.reasons
    missing = plan_result("hf-2021-it2", "teacher", hf_teacher(evidence=None, self_test=False))
    assert missing.components["self_test"] == 0 and not missing.passed


@pytest.mark.parametrize(("briefings", "case_score", "points", "passed"), [
    (2, 60, 100, True), (3, 60, 100, True), (1, 30, 60, True), (1, 29, 59, False), (0, 70, 80, True)])
def test_hf_workshop_host(briefings: int, case_score: float, points: float, passed: bool) -> None:
    records = [rec("HF21-H-PLAN", at=HF), rec("HF21-H-CASE", passed=None, kind="score", score=case_score, at=HF)]
    records += [rec("HF21-H-BRIEF", activity=f"b{i}", kind="activity", at=HF) for i in range(briefings)]
    r = plan_result("hf-2021-it2", "workshop_host", records)
    assert (r.points, r.passed) == (points, passed)
    assert r.components["briefings"] == min(briefings * 10, 20)


ADMIN_TASKS = ["HF21-A-LAUNCH", "HF21-A-PLAN", "HF21-A-REPORT"]


@pytest.mark.parametrize(("teachers", "passed", "tier"), [
    (20, 20, 10), (20, 19, 10), (10000, 9500, 10), (10000, 9499, 8), (20, 16, 8), (10000, 7999, 6), (20, 15, 6),
    (20, 12, 6), (10000, 5999, 4), (20, 10, 4), (10000, 4999, 0), (20, 9, 0), (20, 0, 0)])
def test_hf_school_admin_pass_rate_tiers_at_95_80_60_50(teachers: int, passed: int, tier: int) -> None:
    records = [rec(c, at=HF) for c in ADMIN_TASKS]
    records += [rec("HF21-A-DISCUSS", activity=f"x{i}", kind="activity", at=HF) for i in range(3)]
    r = plan_result("hf-2021-it2", "school_admin", records, school=SchoolStats(teachers=teachers, passed=passed))
    assert r.components["teacher_pass_rate"] == tier
    assert r.components["discussions"] == 10
    assert r.points == 60 + tier


@pytest.mark.parametrize(("teachers", "cases", "points"), [(20, 1, 30), (21, 1, 0), (40, 2, 30), (100, 4, 0)])
def test_hf_school_admin_outstanding_cases_5_percent(teachers: int, cases: int, points: int) -> None:
    records = [rec("HF21-A-CASES", passed=None, kind="score", score=cases, at=HF)]
    r = plan_result("hf-2021-it2", "school_admin", records, school=SchoolStats(teachers=teachers, passed=0))
    assert r.components["outstanding_cases"] == points


def test_hf_school_admin_pass_rate_comes_from_the_teachers_own_results() -> None:
    people = [Person.of(f"T{i:02d}", SCHOOL) for i in range(20)]
    records = []
    for i, p in enumerate(people):
        if i < 16:  # 16 of 20 teachers pass: 80 % -> 8 points
            records += [Record(course=r.course, kind=r.kind, passed=r.passed, minutes=r.minutes, score=r.score,
                               activity=r.activity, occurred_at=r.occurred_at, teacher=p.key) for r in hf_teacher()]
    admin_person = people[0].key
    records += [Record(course=c, passed=True, occurred_at=HF, teacher=admin_person) for c in ADMIN_TASKS]
    results = evaluate_all(load_programme("hf-2021-it2"), catalog=sample_catalog("hf-2021-it2"), people=people,
                           records=records)
    admin = [r for r in results if r.role == "school_admin"]
    assert len(admin) == 1 and admin[0].teacher == SCHOOL
    assert admin[0].components["teacher_pass_rate"] == 8
    assert sum(r.passed for r in results if r.role == "teacher") == 16
    assert not [r for r in results if r.role == "workshop_host"]  # nobody has host records


@pytest.mark.parametrize(("online", "offline", "credits", "reasons"), [
    (80, 40, 10, []), (120, 60, 10, []), (79, 40, 0, ["online hours 79 < 80"]), (80, 39, 0, ["offline hours 39 < 40"]),
    (0, 0, 0, ["online hours 0 < 80", "offline hours 0 < 40"])])
def test_xh_80_online_and_40_offline_give_10_credits(online: float, offline: float, credits: float,
                                                     reasons: list[str]) -> None:
    records = [rec("XH15-ON-01", hours=online, at=XH), rec("XH15-OFF-01", hours=offline, at=XH)]
    r = plan_result("xh-2015", "teacher", [x for x in records if x.hours])
    assert r.credits == credits and r.passed == (credits == 10)
    assert r.reasons == reasons
    assert r.hours == online + offline
