"""The fast evaluator (RolePlan.evaluate, on positional tuples) gives the result the readable one defines
(evaluate_reference.evaluate_role_reference, on named records), for every role of every sample programme, on
generated records, people, assignments, school topics and school figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_helpers import SCHOOL, T1, sample_catalog

from creditbridge.mappings.evaluate import Person, Record, Rules, SchoolStats, as_tuple
from creditbridge.mappings.evaluate_reference import evaluate_role_reference
from creditbridge.programmes import load_programme
from creditbridge.programmes.schema import Window

PROGRAMMES = ["sd-2022", "jx-2018", "hf-2021-it2", "xh-2015"]
RULES = {p: Rules(load_programme(p), sample_catalog(p)) for p in PROGRAMMES}


def _variant() -> Rules:
    """sd-2022 with what no sample rule file has: components that match the teacher's stage, subject and city,
    and components with a window of their own (the first half of the programme's) that also count a record
    which does not say whether it passed by its score."""
    prog = load_programme("sd-2022")
    half = Window(start=prog.window.start, end=prog.window.start + (prog.window.end - prog.window.start) / 2)
    teacher = prog.roles["teacher"]
    components = [c.model_copy(update={"match_teacher": ["stage", "subject", "city"]} if i % 2 == 0
                               else {"window": half, "min_score": 60.0}) for i, c in enumerate(teacher.components)]
    roles = {**prog.roles, "teacher": teacher.model_copy(update={"components": components})}
    return Rules(prog.model_copy(update={"roles": roles}), sample_catalog("sd-2022"))


PROGRAMMES.append("sd-2022 variant")
RULES["sd-2022 variant"] = _variant()
CASES = [(p, role) for p in PROGRAMMES for role in RULES[p].programme.roles]
PEOPLE = [None, Person.of(T1, SCHOOL, "初中", "数学", "济南市"), Person.of(T1, SCHOOL, "小学", "语文", "青岛市"),
          Person.of(T1, SCHOOL)]


@st.composite
def inputs(draw: st.DrawFn) -> tuple[Rules, str, list[Record], dict[str, object]]:
    programme, role = draw(st.sampled_from([*CASES, *[c for c in CASES if c[0] == "sd-2022 variant"] * 3]))
    rules = RULES[programme]
    codes = sorted(rules.catalog)
    # a few courses per example, so that one course has several records (best of, each once, sums)
    pool = draw(st.lists(st.sampled_from([*codes, *codes, "HF21-X-EVIDENCE", "UNKNOWN-1"]), min_size=1, max_size=6))
    # the programme's thresholds and a hair below them, as scores
    marks = sorted({v + d for c in rules.programme.roles[role].components  # type: ignore[index]
                    for v in (c.min_score, c.minimum) if v is not None for d in (0.0, -0.01)})
    start = datetime.combine(rules.programme.window.start, datetime.min.time(), UTC) - timedelta(days=3)
    record = st.builds(
        Record, course=st.sampled_from(pool),
        kind=st.sampled_from(["course", "activity", "time", "score", "revocation"]),
        passed=st.sampled_from([True, False, None, 1, 0]),
        hours=st.one_of(st.none(), st.floats(0, 40, allow_nan=False).map(lambda x: round(x, 2))),
        minutes=st.one_of(st.none(), st.floats(0, 900, allow_nan=False).map(lambda x: round(x, 1))),
        score=st.one_of(st.none(), st.sampled_from(marks or [0.0]),
                        st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 1))),
        activity=st.sampled_from([None, "a1", "a2"]),
        occurred_at=st.one_of(st.none(), st.integers(0, 400).map(lambda d: start + timedelta(days=d))),
        window=st.sampled_from([None, None, None, -1, 0, 1]))
    records = draw(st.lists(record, max_size=30))
    topics = {c.topic for c in rules.catalog.values() if c.topic}
    teachers = draw(st.integers(0, 40))
    options: dict[str, object] = {
        "person": draw(st.sampled_from(PEOPLE)),
        # most of the records' own courses are assigned, or an assigned lesson case with a record is rare
        "assigned": frozenset([*draw(st.lists(st.sampled_from(codes), max_size=3)),
                               *(r.course for r in records if draw(st.integers(0, 3)))]),
        "topics": rules.allowed_topics(draw(st.lists(st.sampled_from(sorted(topics) or [""]), max_size=4))),
        "school": draw(st.sampled_from([None, SchoolStats(teachers, draw(st.integers(0, teachers)))])),
    }
    return rules, role, records, options


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_the_kernel_evaluates_as_the_reference(case: tuple[Rules, str, list[Record], dict[str, object]]) -> None:
    rules, role, records, options = case
    fast = rules.plan(role).evaluate(T1, [as_tuple(r) for r in records], **options)  # type: ignore[arg-type]
    reference = evaluate_role_reference(rules, role, T1, records, **options)  # type: ignore[arg-type]
    assert (fast.as_json(), fast.school) == (reference.as_json(), reference.school)


def test_every_role_of_every_programme_is_generated() -> None:
    assert {role for _, role in CASES} == {"teacher", "workshop_host", "school_admin"}
    assert len(CASES) >= len(PROGRAMMES) + 2
