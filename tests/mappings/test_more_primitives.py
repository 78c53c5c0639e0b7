"""Primitives none of the five programmes uses but the format must not rule out: credits by delivery mode
with a role weight and rounding, nested groups, grades with an aggregate, a score pass condition, a teacher
filter, a cycle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditbridge.mappings.evaluate import Course, Person, Record, evaluate_all
from creditbridge.programmes import RuleFileError, parse_programme

RULES = """
id: demo-2024
name: 示例项目
year: 2024
version: "7"
window: {start: 2024-01-01, end: 2024-12-31}
deadline: 2024-12-31
cycle: {years: 5, start_year: 2024, floor_hours: 360, ceiling_hours: 600}
roles:
  teacher:
    components:
      - name: face_to_face
        select: {modes: [offline]}
        min_score: 60
        grade: {excellent_at: 20, pass_at: 10}
      - name: online
        select: {modes: [online], kinds: [elective]}
        match_teacher: [stage]
        cap: 40
        grade: {excellent_at: 20, pass_at: 10}
    groups:
      - {name: all_study, label_en: all study, label_zh: 全部学习, components: [face_to_face, online], minimum: 30}
      - {name: outer, components: [all_study], cap: 45}
    credits:
      hours_per_credit: {online: 20, offline: 10}
      weight: 0.5
      rounding: half_up
      decimals: 1
      maximum: 5
    grade_rule: all_excellent_any_fail
"""
CATALOG = {c.code: c for c in [
    Course.of("F-1", "required", None, "offline", 10), Course.of("F-2", "required", None, "offline", 15),
    Course.of("O-1", "elective", None, "online", 30, stage="初中"), Course.of("O-2", "elective", None, "online", 30),
    Course.of("O-HIGH", "elective", None, "online", 30, stage="高中")]}
AT = datetime(2024, 5, 1, tzinfo=UTC)


def run(records: list[Record]) -> dict:
    prog = parse_programme(RULES, "demo.yaml")
    person = Person.of("T", "S", "middle", None)
    return evaluate_all(prog, catalog=CATALOG, people=[person], records=records)[0].as_json()


def test_credits_by_mode_with_weight_rounding_and_maximum() -> None:
    r = run([Record("F-1", passed=True, occurred_at=AT, teacher="T"), Record("O-1", passed=True, occurred_at=AT,
                                                                              teacher="T")])
    # offline 10 h / 10 + online 30 h / 20 = 2.5 credits, × 0.5 = 1.25 → 1.3 (half up, 1 decimal)
    assert r["credits"] == 1.3 and r["hours"] == 40 and r["passed"]
    assert r["components"] == {"face_to_face": 10, "online": 30, "all_study": 40, "outer": 40}
    assert r["grade"] == "合格"  # face_to_face only reaches the pass band


def test_score_pass_condition_teacher_filter_group_minimum_and_grade_fail() -> None:
    r = run([Record("F-1", passed=None, score=59, occurred_at=AT, teacher="T"),
             Record("F-2", passed=None, score=60, occurred_at=AT, teacher="T"),
             Record("O-HIGH", passed=True, occurred_at=AT, teacher="T")])
    assert r["components"]["face_to_face"] == 15  # F-1 scored 59 < 60: not passed
    assert r["components"]["online"] == 0  # a course for another stage
    assert "course O-HIGH is not for the teacher's stage: not counted" in r["reasons"]
    assert "all study hours 15 < 30" in r["reasons"] and "全部学习学时 15 < 30" in r["reasons_zh"]
    assert not r["passed"] and r["grade"] == "不合格"


def test_caps_and_excellent_aggregate() -> None:
    r = run([Record(c, passed=True, occurred_at=AT, teacher="T") for c in ("F-1", "F-2", "O-1", "O-2")])
    assert r["components"]["online"] == 40 and r["components"]["outer"] == 45
    assert r["grade"] == "优秀"
    assert r["credits"] == 2.3  # (25 offline / 10 + 40 online after the cap / 20) × 0.5 = 2.25 → 2.3
    assert r["hours"] == 65


def test_cycle_ceiling_below_floor_is_rejected() -> None:
    with pytest.raises(RuleFileError) as e:
        parse_programme(RULES.replace("ceiling_hours: 600", "ceiling_hours: 100"), "demo.yaml")
    assert [p.path for p in e.value.problems] == ["cycle.ceiling_hours"]
