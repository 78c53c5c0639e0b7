"""The lesson-case assignment on its own: count, distinct, never one's own lesson, stable, balanced."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from creditbridge.sync.lesson_cases import CaseTaker, LessonCase, assign_lesson_cases


def _pool(n: int, *, stage: str = "middle", subject: str = "maths", city: str | None = None,
          recorders: dict[int, str] | None = None) -> list[LessonCase]:
    return [LessonCase(f"L-{stage}-{subject}-{i:03d}", stage, subject, city, (recorders or {}).get(i))
            for i in range(n)]


def _teachers(n: int, *, stage: str = "middle", subject: str = "maths", start: int = 0) -> list[CaseTaker]:
    return [CaseTaker(f"T{i:06d}", stage, subject) for i in range(start, start + n)]


def test_each_teacher_gets_the_number_of_distinct_cases_of_their_pool() -> None:
    cases = _pool(7) + _pool(5, stage="primary", subject="chinese")
    teachers = _teachers(10) + _teachers(4, stage="primary", subject="chinese", start=100)
    result = assign_lesson_cases(teachers, cases, {}, per_teacher=3)
    assert set(result.new) == {t.id_number for t in teachers}
    for t in teachers:
        got = result.new[t.id_number]
        assert len(got) == 3 and len(set(got)) == 3
        assert all(code.startswith(f"L-{t.stage}-{t.subject}-") for code in got)
    assert result.count == 42 and not result.short


def test_never_the_lesson_the_teacher_recorded() -> None:
    recorder = "T000001"
    cases = _pool(4, recorders={0: recorder})
    for _ in range(5):
        result = assign_lesson_cases(_teachers(3), cases, {}, per_teacher=3)
        assert "L-middle-maths-000" not in result.new[recorder]
        assert len(result.new[recorder]) == 3


def test_pool_too_small_gives_what_exists_and_says_how_many_are_missing() -> None:
    cases = _pool(3, recorders={1: "T000000"})
    result = assign_lesson_cases(_teachers(2), cases, {}, per_teacher=3)
    assert sorted(result.new["T000000"]) == ["L-middle-maths-000", "L-middle-maths-002"]
    assert result.short == {"T000000": 1}
    assert len(result.new["T000001"]) == 3


def test_existing_assignments_are_kept_and_only_topped_up() -> None:
    cases = _pool(9)
    first = assign_lesson_cases(_teachers(6), cases, {}, per_teacher=3)
    again = assign_lesson_cases(_teachers(6), cases, first.new, per_teacher=3)
    assert again.new == {} and again.count == 0
    # A teacher who holds one case (e.g. the catalog had one when they arrived) gets two more, keeping it.
    partial = {**first.new, "T000099": ["L-middle-maths-008"]}
    topped = assign_lesson_cases(_teachers(1, start=99), cases, partial, per_teacher=3)
    assert len(topped.new["T000099"]) == 2 and "L-middle-maths-008" not in topped.new["T000099"]


def test_a_new_teacher_never_changes_the_others_and_order_does_not_matter() -> None:
    cases = _pool(11)
    teachers = _teachers(20)
    base = assign_lesson_cases(teachers, cases, {}, per_teacher=3)
    shuffled = teachers[:]
    random.Random(7).shuffle(shuffled)
    assert assign_lesson_cases(shuffled, cases, {}, per_teacher=3).new == base.new
    newcomer = assign_lesson_cases(_teachers(1, start=500), cases, base.new, per_teacher=3)
    assert list(newcomer.new) == ["T000500"]


def test_city_level_pool_only_gives_cases_of_the_teachers_city() -> None:
    cases = _pool(4, city="济南市") + [LessonCase(f"Q-{i}", "middle", "maths", "青岛市") for i in range(3)]
    teachers = [CaseTaker("A", "middle", "maths", "济南市"), CaseTaker("B", "middle", "maths", "青岛市")]
    result = assign_lesson_cases(teachers, cases, {}, per_teacher=3, by_city=True)
    assert all(c.startswith("L-") for c in result.new["A"])
    assert sorted(result.new["B"]) == ["Q-0", "Q-1", "Q-2"]
    anywhere = assign_lesson_cases(teachers, cases, {}, per_teacher=3, by_city=False)
    assert len(anywhere.new["B"]) == 3


@settings(max_examples=60, deadline=None)
@given(pool=st.integers(min_value=3, max_value=30), n_teachers=st.integers(min_value=1, max_value=120),
       batches=st.integers(min_value=1, max_value=4), per=st.integers(min_value=1, max_value=3))
def test_load_stays_within_one_across_batches_of_arrivals(pool: int, n_teachers: int, batches: int,
                                                         per: int) -> None:
    cases = _pool(pool)
    held: dict[str, list[str]] = {}
    size = max(1, n_teachers // batches)
    for start in range(0, n_teachers, size):
        result = assign_lesson_cases(_teachers(min(size, n_teachers - start), start=start), cases, held,
                                     per_teacher=per)
        held.update(result.new)
    load = Counter(code for codes in held.values() for code in codes)
    counts = [load.get(c.code, 0) for c in cases]
    assert max(counts) - min(counts) <= 1
    assert all(len(set(v)) == per for v in held.values())


def test_batches_with_a_shared_load_give_what_one_call_gives() -> None:
    cases = _pool(8, recorders={3: "T000004"})
    teachers = _teachers(40)
    whole = assign_lesson_cases(teachers, cases, {}, per_teacher=3).new
    load: dict[str, int] = {}
    parts: dict[str, list[str]] = {}
    for start in range(0, 40, 7):  # a run serves teachers page by page, in ID-number order
        parts.update(assign_lesson_cases(teachers[start:start + 7], cases, {}, per_teacher=3, load=load).new)
    assert parts == whole
    assert sum(load.values()) == 120 and max(load.values()) - min(load.values()) <= 1
