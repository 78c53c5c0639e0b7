"""Incremental re-evaluation on the store: a person whose inputs (records, assignments, school topics, catalog,
rule file, their own stage/subject/school) did not change keeps the stored result without being evaluated;
any change to one of those inputs re-evaluates them, giving what a full evaluation from scratch gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from test_store_and_cli import LESSONS, T_OTHER, T_PASS, T_SHORT, add_record, seed

from creditbridge.mappings.evaluate import RolePlan
from creditbridge.mappings.service import evaluate_store
from creditbridge.programmes import builtin_rule_path
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher
from creditbridge.store.models.credits import CreditResult


@pytest.fixture
def evaluated_people(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the evaluator computes a teacher-role result for, in order (a spy around RolePlan.evaluate)."""
    seen: list[str] = []
    original = RolePlan.evaluate

    def spy(self: RolePlan, key: str, *args: Any, **kwargs: Any) -> Any:
        if self.role_name == "teacher":
            seen.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(RolePlan, "evaluate", spy)
    return seen


def _stored(store: Store) -> dict[tuple[str, str], tuple[Any, ...]]:
    with store.session() as s:
        return {(r.teacher, r.role): (r.result_hash, r.passed, r.components, r.reasons, r.reasons_zh, r.rule_hash)
                for r in s.scalars(select(CreditResult))}


def _same_as_from_scratch(store: Store, programme: str = "sd-2022") -> dict[tuple[str, str], tuple[Any, ...]]:
    """The stored results equal those of a full evaluation with no stored result to start from."""
    incremental = _stored(store)
    with store.session() as s:
        s.execute(delete(CreditResult))
    evaluate_store(None, store, programme=programme)
    assert _stored(store) == incremental
    return incremental


def test_unchanged_inputs_are_not_evaluated_again(store: Store, evaluated_people: list[str]) -> None:
    seed(store)
    first = evaluate_store(None, store, programme="sd-2022")
    assert sorted(evaluated_people) == sorted([T_PASS, T_SHORT, T_OTHER])
    before = _stored(store)
    evaluated_people.clear()

    again = evaluate_store(None, store, programme="sd-2022")
    assert evaluated_people == []  # nothing changed: nobody evaluated
    assert (again.evaluated, again.changed, again.updated, again.new) == (3, 0, 0, 0)
    assert (again.passed, again.failed) == (first.passed, first.failed) == (1, 2)
    assert _stored(store) == before

    add_record(store, T_SHORT, "SD22-E-ETHICS-02", "t:new")  # 14 elective hours now: passes
    third = evaluate_store(None, store, programme="sd-2022")
    assert evaluated_people == [T_SHORT]  # only the teacher with a new record
    assert (third.evaluated, third.changed, third.passed, third.failed) == (3, 1, 2, 1)
    assert _same_as_from_scratch(store)[(T_SHORT, "teacher")][1] is True


def test_a_withdrawn_record_re_evaluates(store: Store, evaluated_people: list[str]) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    evaluated_people.clear()
    with store.session() as s:
        s.execute(update(LearningRecordRow).where(LearningRecordRow.teacher == T_PASS,
                                                  LearningRecordRow.course == "SD22-E-STEAM-04")
                  .values(withdrawn_by="t:revoked"))
    out = evaluate_store(None, store, programme="sd-2022")
    assert evaluated_people == [T_PASS] and out.changed == 1
    assert _same_as_from_scratch(store)[(T_PASS, "teacher")][1] is False


@pytest.mark.parametrize("change", ["school_topics", "assignment", "catalog_hours"])
def test_every_input_is_in_the_fingerprint(store: Store, evaluated_people: list[str], change: str) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    before = _stored(store)
    evaluated_people.clear()
    with store.session() as s:
        if change == "school_topics":  # STEAM-04 (4 h) no longer inside the school's topics
            s.execute(delete(SchoolTopic).where(SchoolTopic.school_code == "370102001", SchoolTopic.topic == "steam"))
        elif change == "assignment":  # one lesson case no longer assigned: only 2 of 3 count
            s.execute(delete(LessonCaseAssignment).where(LessonCaseAssignment.teacher == T_PASS,
                                                         LessonCaseAssignment.course == LESSONS[0]))
        else:  # a passed record without hours is worth the catalog's hours
            s.execute(update(CatalogCourse).where(CatalogCourse.code == "SD22-E-STEAM-04").values(hours=2))
    out = evaluate_store(None, store, programme="sd-2022")
    assert T_PASS in evaluated_people
    assert out.changed >= 1
    after = _same_as_from_scratch(store)
    assert after[(T_PASS, "teacher")] != before[(T_PASS, "teacher")]
    assert after[(T_PASS, "teacher")][1] is False  # T_PASS no longer passes


def test_a_teacher_whose_own_fields_change_is_evaluated_again(store: Store, evaluated_people: list[str]) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    evaluated_people.clear()
    with store.session() as s:  # a teacher filter (match_teacher) or another school's topics may depend on these
        s.execute(update(Teacher).where(Teacher.id_number == T_PASS).values(stage="小学"))
        s.execute(update(Teacher).where(Teacher.id_number == T_OTHER).values(school_code="370102001"))
    evaluate_store(None, store, programme="sd-2022")
    assert sorted(evaluated_people) == sorted([T_PASS, T_OTHER])
    _same_as_from_scratch(store)


def test_a_changed_rule_file_re_evaluates_everyone(store: Store, evaluated_people: list[str], tmp_path: Path) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    evaluated_people.clear()
    path = builtin_rule_path("sd-2022")
    assert path is not None
    rules = tmp_path / "sd-2022.yaml"
    rules.write_text(path.read_text(encoding="utf-8").replace('version: "1"', 'version: "2"'), encoding="utf-8")
    out = evaluate_store(None, store, programme=str(rules))
    assert sorted(evaluated_people) == sorted([T_PASS, T_SHORT, T_OTHER])
    assert (out.changed, out.updated) == (0, 3)  # same outcomes, new rule version stored
    with store.session() as s:
        assert {r.rule_version for r in s.scalars(select(CreditResult))} == {"2"}


def test_results_stored_before_fingerprints_get_one(store: Store, evaluated_people: list[str]) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    with store.session() as s:  # as rows written before migration 0007 look
        s.execute(update(CreditResult).values(input_hash=None))
    evaluated_people.clear()
    out = evaluate_store(None, store, programme="sd-2022")
    assert len(evaluated_people) == 3 and (out.changed, out.updated) == (0, 0)
    evaluated_people.clear()
    evaluate_store(None, store, programme="sd-2022")
    assert evaluated_people == []
