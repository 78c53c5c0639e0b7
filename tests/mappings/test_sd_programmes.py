"""sd-2022 and sd-early, table-driven at and around every boundary PROGRAMMES.md names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from mapping_helpers import SCHOOL, T1, rec, sample_catalog, teacher_result

from creditbridge.mappings.evaluate import Course

CST = timezone(timedelta(hours=8))
TOPICS = ["ethics", "class-management", "mental-health", "steam", "pbl", "big-unit"]
ASSIGNED = {"SD22-L-M-MATH-001", "SD22-L-M-MATH-002", "SD22-L-M-MATH-003"}
REQUIRED = [rec(c) for c in sorted(ASSIGNED)] + [rec("SD22-ETH-01"), rec("SD22-ETH-02")]


def electives(hours: int, at: datetime | None = None) -> list:
    """Passed electives inside the school's topics adding up to exactly `hours` (greedy over 4,3,2,1-hour courses)."""
    pool = [(f"SD22-E-{t.upper()}-{n:02d}", n) for n in (4, 3, 2, 1) for t in TOPICS]
    out, left = [], hours
    for code, h in pool:
        if h <= left:
            out.append(rec(code, at=at) if at else rec(code))
            left -= h
    assert left == 0, "not enough elective hours in the sample catalog"
    return out


@pytest.mark.parametrize(("elective_hours", "component", "hours", "passed", "reasons"), [
    (0, 0, 10, False, ["elective hours 0 < 14", "total hours 10 < 24"]),
    (13, 13, 23, False, ["elective hours 13 < 14", "total hours 23 < 24"]),
    (14, 14, 24, True, []),
    (15, 15, 25, True, []),
    (17, 17, 27, True, []),
    (18, 18, 28, True, []),
    (19, 18, 28, True, []),  # hours beyond 18 do not count
    (30, 18, 28, True, []),
])
def test_elective_hours_14_to_18_and_total_24_to_28(elective_hours: int, component: int, hours: int, passed: bool,
                                                    reasons: list[str]) -> None:
    r = teacher_result("sd-2022", REQUIRED + electives(elective_hours), assigned=ASSIGNED, topics=TOPICS)
    assert r.components == {"lesson_cases": 6, "ethics": 4, "electives": component}
    assert (r.hours, r.credits, r.passed) == (hours, hours, passed)  # 1 hour = 1 credit, earned even when failed
    assert r.reasons == reasons
    assert len(r.reasons_zh) == len(r.reasons)
    if reasons:
        assert "选修学时 13 < 14" in r.reasons_zh or elective_hours != 13


def test_only_assigned_lesson_cases_count() -> None:
    records = [rec("SD22-L-M-MATH-001"), rec("SD22-L-M-MATH-002"), rec("SD22-L-M-MATH-004"),
               rec("SD22-ETH-01"), rec("SD22-ETH-02"), *electives(14)]
    r = teacher_result("sd-2022", records, assigned=ASSIGNED, topics=TOPICS)
    assert r.components["lesson_cases"] == 4
    assert not r.passed
    assert "lesson case SD22-L-M-MATH-003 not passed" in r.reasons
    assert "lesson case SD22-L-M-MATH-004 not assigned to this teacher: not counted" in r.reasons
    assert "课例 SD22-L-M-MATH-003 未合格" in r.reasons_zh


def test_elective_outside_school_topics_counts_nothing_but_subject_electives_do() -> None:
    base = REQUIRED + electives(12)
    outside = teacher_result("sd-2022", [*base, rec("SD22-E-SAFETY-04")], assigned=ASSIGNED, topics=TOPICS)
    assert outside.components["electives"] == 12
    assert "elective SD22-E-SAFETY-04 outside the school's topics (safety): not counted" in outside.reasons
    subject = teacher_result("sd-2022", [*base, rec("SD22-S-M-MATH-01")], assigned=ASSIGNED, topics=TOPICS)
    assert subject.components["electives"] == 14  # topic `subject` counts without the school choosing it
    assert subject.passed


def test_ethics_counts_even_when_the_school_forgot_to_list_it() -> None:
    chosen = [rec(c) for c in ("SD22-E-ETHICS-04", "SD22-E-CLASS-MANAGEMENT-04", "SD22-E-STEAM-04", "SD22-E-PBL-02")]
    r = teacher_result("sd-2022", REQUIRED + chosen, assigned=ASSIGNED,
                       topics=["steam", "pbl", "big-unit", "class-management", "mental-health"])
    assert r.components["electives"] == 14


@pytest.mark.parametrize(("at", "counts", "reason"), [
    (datetime(2022, 8, 1, 0, 0, tzinfo=CST), True, None),
    (datetime(2022, 7, 31, 23, 59, 59, tzinfo=CST), False, "record before the window: SD22-E-STEAM-04"),
    (datetime(2022, 12, 31, 23, 59, 59, tzinfo=CST), True, None),
    (datetime(2023, 1, 1, 0, 0, tzinfo=CST), False, "record after the window: SD22-E-STEAM-04"),
    (datetime(2022, 12, 31, 16, 0, tzinfo=UTC), False, "record after the window: SD22-E-STEAM-04"),  # 1 Jan in Jinan
])
def test_record_outside_the_window_counts_for_nothing(at: datetime, counts: bool, reason: str | None) -> None:
    r = teacher_result("sd-2022", REQUIRED + electives(10) + [rec("SD22-E-STEAM-04", at=at)], assigned=ASSIGNED,
                       topics=TOPICS)
    assert r.components["electives"] == (14 if counts else 10)
    assert r.passed is counts
    if reason:
        assert any(x.startswith(reason) for x in r.reasons), r.reasons
        assert any("学习时间窗口" in x for x in r.reasons_zh)


def test_each_course_counts_once_failed_records_not_at_all_and_hours_default_to_the_catalog() -> None:
    twice = [rec("SD22-E-STEAM-04"), rec("SD22-E-STEAM-04", at=datetime(2022, 10, 1, tzinfo=UTC))]
    r = teacher_result("sd-2022", REQUIRED + twice, assigned=ASSIGNED, topics=TOPICS)
    assert r.components["electives"] == 4
    failed = teacher_result("sd-2022", [*REQUIRED, rec("SD22-E-STEAM-04", passed=False)], assigned=ASSIGNED,
                            topics=TOPICS)
    assert failed.components["electives"] == 0
    given = teacher_result("sd-2022", [*REQUIRED, rec("SD22-E-STEAM-04", hours=1.5)], assigned=ASSIGNED, topics=TOPICS)
    assert given.components["electives"] == 1.5  # a record's own hours win over the catalog's
    lesson = teacher_result("sd-2022", [rec("SD22-L-M-MATH-001", hours=5)], assigned=ASSIGNED, topics=TOPICS)
    assert lesson.components["lesson_cases"] == 2  # 2 hours each, as the rule says


def test_missing_required_course_and_short_lesson_cases_are_reasons_in_both_languages() -> None:
    r = teacher_result("sd-2022", [rec("SD22-ETH-01")], assigned={"SD22-L-M-MATH-001"}, topics=TOPICS)
    assert "required course SD22-ETH-02 not passed" in r.reasons
    assert "lesson case: 0 passed < 3" in r.reasons
    assert "ethics hours 2 < 4" in r.reasons
    assert "师德师风学时 2 < 4" in r.reasons_zh
    assert r.credits == 2 and not r.passed


def _early_catalog() -> dict[str, Course]:
    cat = {k: v for k, v in sample_catalog("sd-2022").items() if k != "SD22-ETH-01"}  # one 2-hour law course
    return cat


def test_sd_early_electives_18_to_22_with_the_restricted_law_course() -> None:
    cat = _early_catalog()
    at = datetime(2021, 9, 1, tzinfo=CST)  # study 16 Jul – 15 Nov 2021
    lessons = [rec(c, at=at) for c in sorted(ASSIGNED)]
    law = rec("SD22-ETH-02", at=at)
    ok = teacher_result("sd-early", [*lessons, law, *electives(16, at)], assigned=ASSIGNED,
                            topics=TOPICS, catalog=cat)
    assert ok.components == {"lesson_cases": 6, "electives": 18, "education_law": 2}
    assert ok.passed and ok.hours == 24 and ok.credits == 24
    capped = teacher_result("sd-early", [*lessons, law, *electives(30, at)], assigned=ASSIGNED,
                            topics=TOPICS, catalog=cat)
    assert capped.components["electives"] == 22 and capped.hours == 28
    no_law = teacher_result("sd-early", [*lessons, *electives(20, at)], assigned=ASSIGNED,
                            topics=TOPICS, catalog=cat)
    assert no_law.components["electives"] == 20
    assert not no_law.passed
    assert "restricted elective SD22-ETH-02 not passed" in no_law.reasons
    short = teacher_result("sd-early", [*lessons, law, *electives(15, at)], assigned=ASSIGNED,
                            topics=TOPICS, catalog=cat)
    assert "elective hours 17 < 18" in short.reasons and not short.passed


def test_a_teacher_with_no_records_gets_a_failed_result_with_reasons() -> None:
    r = teacher_result("sd-2022", [], assigned=ASSIGNED, topics=TOPICS)
    assert r.teacher == T1 and r.school == SCHOOL
    assert (r.hours, r.credits, r.passed, r.points) == (0, 0, False, None)
    assert "total hours 0 < 24" in r.reasons


@pytest.mark.parametrize(("lesson_at", "elective_at", "lessons", "electives_", "reasons"), [
    # inside both: everything counts
    (datetime(2021, 11, 15, 23, 59, tzinfo=CST), datetime(2021, 12, 31, 23, 59, tzinfo=CST), 6, 18, []),
    # subject lessons after their own window (16 Jul–15 Nov) count for nothing, electives still do until 31 Dec
    (datetime(2021, 11, 16, 0, 0, tzinfo=CST), datetime(2021, 11, 16, 0, 0, tzinfo=CST), 0, 18,
     ["record after the window: SD22-L-M-MATH-001 (2021-07-16 – 2021-11-15), not counted"]),
    # before the programme window: nothing counts, said once per record against the programme's dates
    (datetime(2021, 7, 15, 23, 59, tzinfo=CST), datetime(2021, 7, 15, 23, 59, tzinfo=CST), 0, 0,
     ["record before the window: SD22-L-M-MATH-001 (2021-07-16 – 2021-12-31), not counted"]),
    # after the programme window (1 Jan 2022 in Jinan)
    (datetime(2021, 11, 1, tzinfo=CST), datetime(2022, 1, 1, 0, 0, tzinfo=CST), 6, 0,
     ["record after the window: SD22-E-STEAM-04 (2021-07-16 – 2021-12-31), not counted"]),
])
def test_sd_early_subject_lessons_have_a_window_of_their_own(lesson_at: datetime, elective_at: datetime,
                                                              lessons: int, electives_: int,
                                                              reasons: list[str]) -> None:
    cat = _early_catalog()
    recs = [*(rec(c, at=lesson_at) for c in sorted(ASSIGNED)), rec("SD22-ETH-02", at=elective_at),
            *electives(16, elective_at)]
    r = teacher_result("sd-early", recs, assigned=ASSIGNED, topics=TOPICS, catalog=cat)
    assert r.components["lesson_cases"] == lessons
    assert r.components["electives"] == electives_
    for reason in reasons:
        assert reason in r.reasons
    assert r.passed == (lessons == 6 and electives_ == 18)


def test_a_component_window_outside_the_programme_window_is_refused(tmp_path: Path) -> None:
    from creditbridge.programmes import RuleFileError, builtin_rule_path, load_programme

    text = builtin_rule_path("sd-early").read_text(encoding="utf-8").replace(
        "window: {start: 2021-07-16, end: 2021-11-15}", "window: {start: 2021-07-01, end: 2021-11-15}")
    bad = tmp_path / "sd-early.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(RuleFileError) as e:
        load_programme(str(bad))
    assert any("teacher.components.0.window" in p.reason and "inside the programme window" in p.reason
               for p in e.value.problems)
