"""Issue 16: marks where inputs change, `credits evaluate` of the marked teachers only (`--all` for everyone),
`credits status`. Marks are written by database triggers, so the tests change the tables the way the write
paths do (ORM sessions, plain UPDATE/DELETE) and drive the evaluation through the CLI."""

from __future__ import annotations

import csv
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_helpers import SAMPLES
from sqlalchemy import column as text_column
from sqlalchemy import delete, func, select, update
from sqlalchemy import table as text_table
from test_incremental import evaluated_people  # noqa: F401  (the spy fixture)
from test_store_and_cli import T_OTHER, T_PASS, T_SHORT, add_record, seed

from creditbridge.cli.main import cli
from creditbridge.mappings import service
from creditbridge.mappings.service import evaluate_store
from creditbridge.programmes import builtin_rule_path
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher
from creditbridge.store.models.credits import CreditEvaluationRun, CreditMark, CreditResult, CreditResultChange

HF = "hf-2021-it2"
HF_AT = datetime(2021, 9, 1, 2, 0, tzinfo=UTC)
# hf-2021-it2 teachers (ID-number shaped keys) and their schools
HF_T = [f"3401041990010{i:04d}X"[:18] for i in range(1, 7)]
# records that make a hf-2021-it2 teacher pass (70 points), and ones of the host and admin roles
PASSING = [dict(course="HF21-T-SELFTEST", kind="course", passed=True),
           dict(course="HF21-T-PLAN", kind="course", passed=True),
           dict(course="HF21-C-A1", kind="time", passed=None, minutes=300),
           dict(course="HF21-C-B3", kind="time", passed=None, minutes=300),
           dict(course="HF21-T-DISCUSS", kind="activity", passed=True, activity="d0"),
           dict(course="HF21-T-SCHOOL", kind="score", passed=None, score=20),
           dict(course="HF21-X-EVIDENCE", kind="score", passed=None, score=20)]
OTHER = [dict(course="HF21-A-LAUNCH", kind="course", passed=True),
         dict(course="HF21-A-PLAN", kind="course", passed=True),
         dict(course="HF21-A-DISCUSS", kind="activity", passed=True, activity="a1"),
         dict(course="HF21-H-PLAN", kind="course", passed=True),
         dict(course="HF21-H-CASE", kind="score", passed=None, score=40)]
TEMPLATES = PASSING + OTHER


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(path)


def _cli(runner: CliRunner, config: str, *args: str) -> Any:
    res = runner.invoke(cli, ["--config", config, *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _evaluate(runner: CliRunner, config: str, *extra: str) -> dict[str, Any]:
    return _cli(runner, config, "credits", "evaluate", "--summary", "--json", *extra)


def _marks(store: Store) -> list[tuple[str | None, str | None]]:
    with store.session() as s:
        return sorted(s.execute(select(CreditMark.teacher, CreditMark.school)).all(),
                      key=lambda r: (r[0] or "", r[1] or ""))


def _results(store: Store, programme: str | None = None) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Everything a stored result says: the pushed columns, reasons, components, rule."""
    q = select(CreditResult)
    if programme:
        q = q.where(CreditResult.programme == programme)
    with store.session() as s:
        return {(r.programme, r.teacher, r.role): (r.year, float(r.hours), float(r.credits),
                                                   None if r.points is None else float(r.points), r.passed,
                                                   r.components, r.reasons, r.reasons_zh, r.rule_version,
                                                   r.rule_hash, r.result_hash) for r in s.scalars(q)}


def _from_scratch(store: Store, programme: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """What `--all` stores when no result is stored yet (a copy of the store evaluated from nothing)."""
    with store.session() as s:
        s.execute(delete(CreditResult))
    evaluate_store(None, store, programme=programme)
    return _results(store)


# --- each source of change marks exactly its teachers -------------------------------------------------------


def test_each_source_of_change_marks_exactly_its_teachers(store: Store, db_url: str, config: str, runner: CliRunner,
                                                          evaluated_people: list[str]) -> None:  # noqa: F811
    seed(store)
    first = _evaluate(runner, config)
    assert first["programmes"]["sd-2022"]["mode"] == "all"
    assert first["programmes"]["sd-2022"]["reason"] == "no complete evaluation of sd-2022 yet"
    assert _marks(store) == []  # the full run cleared what the seeding marked

    def step(expected_marks: list[tuple[str | None, str | None]], expected_people: set[str]) -> dict[str, Any]:
        assert _marks(store) == expected_marks
        evaluated_people.clear()
        doc = _evaluate(runner, config)
        pc = doc["programmes"]["sd-2022"]
        assert pc["mode"] == "incremental", pc
        assert set(evaluated_people) == expected_people
        assert _marks(store) == []
        return pc

    # nothing changed: nobody evaluated
    assert step([], set())["evaluated"] == 0
    # a learning record stored (inbox processing, `intake import`, reconcile all insert rows)
    add_record(store, T_SHORT, "SD22-E-ETHICS-02", "t:new")
    assert step([(T_SHORT, None)], {T_SHORT})["changed"] == 1
    # a record withdrawn by a revocation
    with store.session() as s:
        s.execute(update(LearningRecordRow).where(LearningRecordRow.source == "t:new").values(withdrawn_by="t:rev2"))
    step([(T_SHORT, None)], {T_SHORT})
    # a lesson-case assignment
    with store.session() as s:
        s.add(LessonCaseAssignment(programme="sd-2022", teacher=T_OTHER, course="SD22-L-M-MATH-004"))
    step([(T_OTHER, None)], {T_OTHER})
    # sync's bookkeeping on the roster (Moodle ids, applied hashes) changes no input: no mark
    with store.session() as s:
        s.execute(update(Teacher).values(moodle_user_id=7, applied_hash="x", phone="123"))
        s.execute(update(CatalogCourse).values(moodle_course_id=9, applied_hash="y"))
    step([], set())
    # a roster change of an input field (stage)
    with store.session() as s:
        s.execute(update(Teacher).where(Teacher.id_number == T_OTHER).values(stage="小学"))
    step([(T_OTHER, "370102002")], {T_OTHER})
    # a transfer: the teacher, with the old school and the new
    with store.session() as s:
        s.execute(update(Teacher).where(Teacher.id_number == T_PASS).values(school_code="370102002"))
    step([(T_PASS, "370102001"), (T_PASS, "370102002")], {T_PASS})
    # a topic change marks the school: all its teachers are evaluated (T_SHORT is its only teacher now)
    with store.session() as s:
        s.add(SchoolTopic(programme="sd-2022", school_code="370102002", topic="steam"))
    step([(None, "370102002")], {T_PASS, T_OTHER})
    # a teacher leaves the roster: marked; the stored result is withdrawn
    with store.session() as s:
        s.execute(delete(Teacher).where(Teacher.id_number == T_OTHER))
    pc = step([(T_OTHER, "370102002")], set())
    assert pc["changed"] == 1 and (pc["evaluated"], ("sd-2022", T_OTHER, "teacher") in _results(store)) == (0, False)
    # the end state equals a full evaluation from nothing
    incremental = _results(store)
    assert _from_scratch(store, "sd-2022") == incremental

    # a catalog change: the whole programme, with the reason in the output
    with store.session() as s:
        s.execute(update(CatalogCourse).where(CatalogCourse.code == "SD22-E-STEAM-04").values(hours=3))
    assert _marks(store) == [(None, None)]
    evaluated_people.clear()
    pc = _evaluate(runner, config)["programmes"]["sd-2022"]
    assert (pc["mode"], pc["reason"]) == ("all", "catalog changed")
    assert set(evaluated_people) == {T_PASS, T_SHORT}  # everyone's fingerprint changed with the catalog
    assert _marks(store) == []


def _hf_seed(store: Store, schools: dict[str, str], passing: set[str], admin_of: dict[str, str]) -> None:
    """hf-2021-it2: its catalog, teachers in schools, the passing records of `passing`, the school-admin tasks
    done by one teacher per school (`admin_of`: school -> teacher)."""
    with store.session() as s:
        with (SAMPLES / HF / "catalog.csv").open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                s.add(CatalogCourse(programme=HF, code=r["code"], title=r["title"], kind=r["kind"],
                                    topic=r["topic"] or None, mode=r["mode"], hours=r["hours"] or 0))
        for idn, school in schools.items():
            s.add(Teacher(programme=HF, id_number=idn, name="教师", school_code=school, school_name="学校",
                          county="蜀山区", city="合肥市", stage="初中", subject="数学"))
        n = 0
        for idn in sorted(passing):
            for r in PASSING:
                n += 1
                s.add(LearningRecordRow(programme=HF, teacher=idn, occurred_at=HF_AT, source=f"hf:{idn}:{n}", **r))
        for school, idn in admin_of.items():
            for r in OTHER[:3]:
                n += 1
                s.add(LearningRecordRow(programme=HF, teacher=idn, occurred_at=HF_AT, source=f"hf:{school}:{n}", **r))


def test_a_transfer_recomputes_the_admin_results_of_both_schools(store: Store, config: str,
                                                                 runner: CliRunner) -> None:
    t, u, v = HF_T[:3]
    _hf_seed(store, {t: "S1", u: "S1", v: "S2"}, passing={t}, admin_of={"S1": u, "S2": v})
    _evaluate(runner, config)
    before = _results(store, HF)
    # S1: 1 of 2 teachers passed (50 % → 4 points); S2: 0 of 1 (0 %)
    assert before[(HF, "S1", "school_admin")][5]["teacher_pass_rate"] == 4
    assert before[(HF, "S2", "school_admin")][5]["teacher_pass_rate"] == 0

    with store.session() as s:  # the passing teacher moves to S2
        s.execute(update(Teacher).where(Teacher.id_number == t).values(school_code="S2"))
    doc = _evaluate(runner, config)["programmes"][HF]
    assert doc["mode"] == "incremental" and doc["evaluated"] == 3  # the teacher and both schools' admin results
    after = _results(store, HF)
    assert after[(HF, "S1", "school_admin")][5]["teacher_pass_rate"] == 0  # 0 of 1
    assert after[(HF, "S2", "school_admin")][5]["teacher_pass_rate"] == 4  # 1 of 2
    assert _from_scratch(store, HF) == after

    # the last teacher leaves S1: its admin result is withdrawn, as a full run would do
    with store.session() as s:
        s.execute(delete(Teacher).where(Teacher.id_number == u))
    _evaluate(runner, config)
    after = _results(store, HF)
    assert (HF, "S1", "school_admin") not in after
    assert _from_scratch(store, HF) == after


# --- the property: incremental equals --all ------------------------------------------------------------------

_TEACHER = st.integers(0, len(HF_T) - 1)
_SCHOOL = st.sampled_from(["S1", "S2", "S3"])
OPS = st.one_of(
    st.tuples(st.just("record"), _TEACHER, st.integers(0, len(TEMPLATES) - 1)),
    st.tuples(st.just("withdraw"), st.integers(0, 50)),
    st.tuples(st.just("delete_record"), st.integers(0, 50)),
    st.tuples(st.just("transfer"), _TEACHER, _SCHOOL),
    st.tuples(st.just("stage"), _TEACHER, st.sampled_from(["小学", "初中"])),
    st.tuples(st.just("join"), _TEACHER, _SCHOOL),
    st.tuples(st.just("leave"), _TEACHER),
    st.tuples(st.just("topic"), _SCHOOL, st.sampled_from(["t1", "t2"])),
    st.tuples(st.just("assign"), _TEACHER, st.sampled_from(["HF21-T-PLAN", "HF21-H-PLAN"])),
    st.tuples(st.just("catalog"), st.sampled_from([0, 10, 30])),  # 30: as it is, no change
    st.tuples(st.just("evaluate")),
)
_TABLES = (CreditResult, CreditResultChange, CreditEvaluationRun, LearningRecordRow, LessonCaseAssignment, SchoolTopic,
           Teacher, CatalogCourse, CreditMark)  # marks last: deleting the others marks


def _apply(store: Store, op: tuple[Any, ...], n: int) -> None:
    kind = op[0]
    with store.session() as s:
        if kind == "record":
            s.add(LearningRecordRow(programme=HF, teacher=HF_T[op[1]], occurred_at=HF_AT, source=f"p:{n}",
                                    **TEMPLATES[op[2]]))
        elif kind in ("withdraw", "delete_record"):
            ids = s.scalars(select(LearningRecordRow.id).where(LearningRecordRow.withdrawn_by.is_(None))
                            .order_by(LearningRecordRow.id)).all()
            if ids:
                target = LearningRecordRow.id == ids[op[1] % len(ids)]
                if kind == "withdraw":
                    s.execute(update(LearningRecordRow).where(target).values(withdrawn_by=f"rev:{n}"))
                else:
                    s.execute(delete(LearningRecordRow).where(target))
        elif kind in ("transfer", "stage"):
            col = "school_code" if kind == "transfer" else "stage"
            s.execute(update(Teacher).where(Teacher.id_number == HF_T[op[1]]).values({col: op[2]}))
        elif kind == "join":
            if s.scalar(select(Teacher.id).where(Teacher.id_number == HF_T[op[1]])) is None:
                s.add(Teacher(programme=HF, id_number=HF_T[op[1]], name="教师", school_code=op[2], school_name="学校",
                              county="蜀山区", city="合肥市", stage="初中", subject="数学"))
        elif kind == "leave":
            s.execute(delete(Teacher).where(Teacher.id_number == HF_T[op[1]]))
        elif kind == "topic":
            found = s.scalar(select(SchoolTopic).where(SchoolTopic.school_code == op[1], SchoolTopic.topic == op[2]))
            if found is None:
                s.add(SchoolTopic(programme=HF, school_code=op[1], topic=op[2]))
            else:
                s.delete(found)
        elif kind == "assign":
            if s.scalar(select(LessonCaseAssignment.id).where(LessonCaseAssignment.teacher == HF_T[op[1]],
                                                              LessonCaseAssignment.course == op[2])) is None:
                s.add(LessonCaseAssignment(programme=HF, teacher=HF_T[op[1]], course=op[2]))
        elif kind == "catalog":
            s.execute(update(CatalogCourse).where(CatalogCourse.code == "HF21-T-SCHOOL").values(hours=op[1]))
    if kind == "evaluate":
        evaluate_store(None, store, programme=HF, incremental=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=12), chunk=st.sampled_from([1, 2, 5000]))
def test_incremental_evaluation_equals_a_full_one_after_any_changes(store: Store, ops: list[tuple[Any, ...]],
                                                                    chunk: int) -> None:
    """`chunk`: teachers per chunk of the last run; below the number marked, PostgreSQL reads the next chunk
    on a second connection while one is evaluated."""
    with store.session() as s:
        for model in _TABLES:
            s.execute(delete(model))
    _hf_seed(store, {HF_T[0]: "S1", HF_T[1]: "S1", HF_T[2]: "S2", HF_T[3]: "S2"}, passing={HF_T[0], HF_T[2]},
             admin_of={"S1": HF_T[1], "S2": HF_T[2]})
    evaluate_store(None, store, programme=HF, incremental=True)  # the first run is a full one
    for n, op in enumerate(ops):
        _apply(store, op, n)
    # a catalog change since the last evaluation makes it a full run; anything else: the marked teachers only
    catalog_changed = (None, None) in _marks(store)
    out = evaluate_store(None, store, programme=HF, incremental=True, chunk_size=chunk)
    assert out.programmes[HF].mode == ("all" if catalog_changed else "incremental")
    assert _marks(store) == []
    incremental = _results(store)
    assert _from_scratch(store, HF) == incremental


# --- a rule change, a change during an evaluation, status ---------------------------------------------------


def test_a_rule_change_re_evaluates_its_programme_only(store: Store, config: str, runner: CliRunner,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(store)
    _hf_seed(store, {HF_T[0]: "S1"}, passing={HF_T[0]}, admin_of={})
    doc = _evaluate(runner, config)
    assert {c: p["mode"] for c, p in doc["programmes"].items()} == {"sd-2022": "all", HF: "all"}
    # a new version of the sd-2022 rule file is shipped: every sd-2022 teacher is evaluated, hf-2021-it2 not
    text = builtin_rule_path("sd-2022").read_text(encoding="utf-8")
    assert "version: 1" in text or "version: '1'" in text or 'version: "1"' in text
    rules = tmp_path / "rules"
    rules.mkdir()
    new = rules / "sd-2022.yaml"
    new.write_text(text.replace("name:", "# a comment changes the hash only\nname:", 1), encoding="utf-8")
    import creditbridge.programmes.loading as loading

    original = loading.builtin_rule_path
    monkeypatch.setattr(loading, "builtin_rule_path", lambda code: new if code == "sd-2022" else original(code))
    doc = _evaluate(runner, config)
    sd, hf = doc["programmes"]["sd-2022"], doc["programmes"][HF]
    assert sd["mode"] == "all" and sd["reason"].startswith("rule file changed since the last complete run")
    assert sd["evaluated"] == 3
    assert (hf["mode"], hf["evaluated"]) == ("incremental", 0)
    # the next run: the new hash is the last complete run's, nothing is marked
    doc = _evaluate(runner, config)
    assert doc["programmes"]["sd-2022"]["mode"] == "incremental" and doc["evaluated"] == 0


def test_a_change_committed_during_an_evaluation_is_evaluated_by_the_next(store: Store) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    for t in (T_PASS, T_SHORT, T_OTHER):  # all three marked
        add_record(store, t, "SD22-E-SAFETY-04", f"t:first:{t}")
    done: list[int] = []

    def meanwhile(_n: int) -> None:
        # after the first chunk (one teacher) is written: new records of a teacher done already and of one not
        done.append(_n)
        if len(done) == 1:
            add_record(store, T_PASS, "SD22-E-ETHICS-02", "t:during:1")
            add_record(store, T_OTHER, "SD22-E-ETHICS-02", "t:during:2")

    out = evaluate_store(None, store, programme="sd-2022", incremental=True, chunk_size=1, progress=meanwhile)
    assert out.programmes["sd-2022"].mode == "incremental" and out.evaluated == 3
    # the marks of the changes made during the run are still there, the ones it read are gone
    with store.session() as s:
        left = s.scalar(select(func.count()).select_from(CreditMark))
    assert left == 2
    assert {t for t, _ in _marks(store)} == {T_PASS, T_OTHER}
    out = evaluate_store(None, store, programme="sd-2022", incremental=True)
    assert out.evaluated == 2 and _marks(store) == []
    incremental = _results(store)
    assert _from_scratch(store, "sd-2022") == incremental


@pytest.mark.postgres
def test_two_evaluations_at_once_lose_no_mark(pg_url: str) -> None:
    """Two incremental evaluations (the flow lock makes one wait) and a writer at the same time on PostgreSQL:
    afterwards one more run leaves the results a full evaluation gives, and no mark behind."""
    store = open_store(pg_url)
    try:
        seed(store)
        evaluate_store(None, store, programme="sd-2022")
        errors: list[BaseException] = []

        def run(fn: Any) -> None:
            try:
                fn()
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        def writer() -> None:
            for i in range(20):
                add_record(store, (T_PASS, T_SHORT, T_OTHER)[i % 3], "SD22-E-SAFETY-04", f"t:race:{i}")

        def evaluator() -> None:
            for _ in range(5):
                # one evaluation at a time per store (store/locks.py): the second waits for the first
                evaluate_store(None, store, programme="sd-2022", incremental=True, chunk_size=1, wait=True)

        threads = [threading.Thread(target=run, args=(f,)) for f in (writer, evaluator, evaluator)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        evaluate_store(None, store, programme="sd-2022", incremental=True)
        assert _marks(store) == []
        incremental = _results(store)
        assert _from_scratch(store, "sd-2022") == incremental
    finally:
        store.dispose()


def test_credits_status_and_intake_status(store: Store, config: str, runner: CliRunner) -> None:
    seed(store)
    doc = _cli(runner, config, "credits", "status", "--json")
    assert doc["waiting_evaluation"] == 3  # seeding the roster marked every teacher
    assert doc["evaluation"]["programmes"]["sd-2022"]["whole_programme"] is True  # and the catalog the programme
    _evaluate(runner, config)
    doc = _cli(runner, config, "credits", "status", "--json")
    assert (doc["waiting_evaluation"], doc["waiting_evaluation_oldest_age_seconds"]) == (0, None)
    # three teacher results, none in the outbox yet: all wait for push
    assert doc["waiting_push"] == 3 and doc["push"]["to_build"] == 3 and doc["push"]["pending"] == 0
    assert doc["waiting_push_oldest_age_seconds"] >= 0

    add_record(store, T_SHORT, "SD22-E-ETHICS-02", "t:new")
    doc = _cli(runner, config, "credits", "status", "--json")
    assert doc["waiting_evaluation"] == 1
    sd = doc["evaluation"]["programmes"]["sd-2022"]
    assert (sd["teachers"], sd["schools"], sd["whole_programme"]) == (1, 0, False)
    assert sd["oldest_age_seconds"] >= 0
    intake = _cli(runner, config, "intake", "status", "--json")
    assert (intake["waiting_evaluation"], intake["waiting_push"]) == (1, 3)
    text = runner.invoke(cli, ["--config", config, "credits", "status"])
    assert text.exit_code == 0 and "waiting for evaluation: 1 teacher(s)" in text.output
    assert "sd-2022: 1 teacher(s)" in text.output and T_SHORT not in text.output
    # a bad option is a usage error, exit 2
    bad = runner.invoke(cli, ["--config", config, "credits", "status", "--since", "x"])
    assert bad.exit_code == 2
    bad = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--all", "--roster",
                              str(SAMPLES / "sd-2022" / "roster.csv")])
    assert bad.exit_code == 2 and "--all" in bad.output


def _eighty_evaluated_teachers(store: Store) -> list[str]:
    """The seed plus 80 teachers of one school, evaluated once: enough rows for PostgreSQL's COPY paths."""
    seed(store)
    many = [f"11010119900101{i:04d}"[:18] for i in range(80)]
    with store.session() as s:
        for idn in many:
            s.add(Teacher(programme="sd-2022", id_number=idn, name="教师", school_code="370102001",
                          school_name="学校", county="历下区", city="济南市", stage="初中", subject="数学"))
    evaluate_store(None, store, programme="sd-2022")
    return many


def test_many_rewritten_results_at_once(store: Store) -> None:
    """Enough changed results that PostgreSQL rewrites them through COPY into a temporary table: the stored
    rows are those of an evaluation from nothing, twice in a row (the temporary table is emptied at commit)."""
    many = _eighty_evaluated_teachers(store)
    for round_ in range(2):
        for idn in many:
            add_record(store, idn, f"SD22-E-ETHICS-0{round_ + 1}", f"t:many:{round_}:{idn}")
        out = evaluate_store(None, store, programme="sd-2022", incremental=True)
        assert out.programmes["sd-2022"].mode == "incremental"
        assert out.evaluated == 80 and out.updated + out.changed == 80
        incremental = _results(store)
        assert _from_scratch(store, "sd-2022") == incremental


def _input_hashes(store: Store) -> dict[tuple[str, str], str | None]:
    with store.session() as s:
        return {(r.teacher, r.role): r.input_hash for r in s.scalars(select(CreditResult))}


def test_many_changes_logged_and_refingerprinted_at_once(store: Store) -> None:
    """Enough changed results that PostgreSQL writes the change log through COPY, and enough results whose inputs
    changed but not their outcome that it notes the new fingerprints through COPY: the change log holds one row
    per changed result with what was pushed before and after, and the fingerprints are those an evaluation
    from nothing stores (so the next run skips these people)."""
    many = _eighty_evaluated_teachers(store)
    for idn in many:
        add_record(store, idn, "SD22-E-ETHICS-01", f"t:log:{idn}")
    out = evaluate_store(None, store, programme="sd-2022", incremental=True)
    assert (out.evaluated, out.changed) == (80, 80)
    run_id = out.programmes["sd-2022"].run_id
    with store.session() as s:
        logged = s.scalars(select(CreditResultChange).where(CreditResultChange.run_id == run_id)).all()
    assert sorted(c.teacher for c in logged) == many
    for c in logged:
        assert c.programme == "sd-2022" and c.role == "teacher" and c.rule_changed is False and c.at is not None
        assert c.before is not None and c.before["hours"] < c.after["hours"]  # the ethics course counted
        assert c.after["rule_hash"] == out.programmes["sd-2022"].rule_hash

    # the same course once more (another source): the inputs change, the outcome does not
    for idn in many:
        add_record(store, idn, "SD22-E-ETHICS-01", f"t:again:{idn}")
    before = _results(store)
    out = evaluate_store(None, store, programme="sd-2022", incremental=True)
    assert (out.evaluated, out.changed, out.updated) == (80, 0, 0)
    assert _results(store) == before
    hashes = _input_hashes(store)
    assert _from_scratch(store, "sd-2022") == before
    assert _input_hashes(store) == hashes
    # nothing marked now, and the noted fingerprints hold: nobody is evaluated
    assert evaluate_store(None, store, programme="sd-2022", incremental=True).evaluated == 0


def test_marks_of_programmes_never_evaluated_are_disposed_and_counted(store: Store, config: str,
                                                                     runner: CliRunner) -> None:
    """Records of a programme without a rule file (or one never evaluated whole) mark teachers nobody would
    evaluate incrementally: `credits evaluate` deletes those marks and counts them; the marks of a programme
    with a complete run stay for it."""
    seed(store)
    assert _evaluate(runner, config)["marks_disposed"] == {}  # sd-2022's first run: its marks were its own
    with store.session() as s:
        for n, programme in enumerate(["zz-none", "zz-none", "hf-2021-it2"]):
            s.add(LearningRecordRow(programme=programme, teacher=T_PASS, course="X-1", kind="course", passed=True,
                                    occurred_at=datetime(2022, 9, 1, tzinfo=UTC), source=f"t:orphan:{n}"))
            s.flush()  # one statement each: one mark each on PostgreSQL too
    add_record(store, T_SHORT, "SD22-E-ETHICS-02", "t:kept")
    doc = _evaluate(runner, config)
    assert doc["marks_disposed"] == {"hf-2021-it2": 1, "zz-none": 2}
    assert doc["programmes"]["sd-2022"]["mode"] == "incremental" and doc["evaluated"] == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(CreditMark)) == 0
    assert _cli(runner, config, "credits", "status", "--json")["waiting_evaluation"] == 0
    assert _evaluate(runner, config)["marks_disposed"] == {}

    # the text form says it too; a programme evaluated whole keeps its marks
    with store.session() as s:
        s.add(LearningRecordRow(programme="zz-none", teacher=T_PASS, course="X-1", kind="course", passed=True,
                                occurred_at=datetime(2022, 9, 1, tzinfo=UTC), source="t:orphan:text"))
    add_record(store, T_SHORT, "SD22-E-ETHICS-03", "t:kept:2")
    with store.session() as s:
        s.add(CreditEvaluationRun(programme="sd-2022", rule_version="1", rule_hash="x", started_at=datetime.now(UTC),
                                  evaluated=0, changed=0, passed=0, failed=0))  # unfinished: not a complete run
    text = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--programme", HF])
    assert text.exit_code == 0, text.output
    assert "marks deleted unread" in text.output and "zz-none 1" in text.output
    assert _marks(store) == [(T_SHORT, None)]  # sd-2022's mark waits for sd-2022's next run


@pytest.mark.postgres
def test_a_large_full_run_refreshes_the_planner_statistics(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full run that wrote many results ANALYZEs credit_result: the statistics of the empty table made
    PostgreSQL read the results of a few marked teachers by filtering every result of the programme."""
    monkeypatch.setattr(service, "ANALYZE_AFTER", 3)
    store = open_store(pg_url)
    try:
        seed(store)

        def reltuples() -> float:
            with store.engine.connect() as c:
                return float(c.execute(select(func.max(text_column("reltuples"))).select_from(
                    text_table("pg_class")).where(text_column("relname") == "credit_result")).scalar_one())

        assert reltuples() <= 0  # never analyzed (-1) or empty
        out = evaluate_store(None, store, programme="sd-2022")
        assert out.new == 3
        assert reltuples() == 3
    finally:
        store.dispose()
