"""evaluate_store on SQLite and PostgreSQL, result changes after a rule change, and the CLI in both modes."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from mapping_helpers import SAMPLES
from sqlalchemy import select

from creditbridge.cli.main import cli
from creditbridge.mappings.read import stored_result
from creditbridge.mappings.service import evaluate_store
from creditbridge.programmes import builtin_rule_path
from creditbridge.records import mask_id_number
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher
from creditbridge.store.models.credits import CreditEvaluationRun, CreditResult, CreditResultChange

T_PASS = "370102198602110011"  # completes everything
T_SHORT = "37010219890514004X"  # 12 elective hours, one withdrawn record
T_OTHER = "370102199006150054"  # another school, no records
AT = datetime(2022, 9, 1, 2, 0, tzinfo=UTC)
LESSONS = ["SD22-L-M-MATH-001", "SD22-L-M-MATH-002", "SD22-L-M-MATH-003"]
PASS_ELECTIVES = ["SD22-E-STEAM-04", "SD22-E-PBL-04", "SD22-E-BIG-UNIT-04", "SD22-E-ETHICS-02"]  # 14 hours


def seed(store: Store) -> None:
    with store.session() as s:
        with (SAMPLES / "sd-2022" / "catalog.csv").open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                s.add(CatalogCourse(programme="sd-2022", code=r["code"], title=r["title"], kind=r["kind"],
                                    topic=r["topic"] or None, mode=r["mode"], hours=r["hours"],
                                    stage=r["stage"] or None, subject=r["subject"] or None, city=r["city"] or None))
        for idn, school in ((T_PASS, "370102001"), (T_SHORT, "370102001"), (T_OTHER, "370102002")):
            s.add(Teacher(programme="sd-2022", id_number=idn, name="教师", school_code=school, school_name="学校",
                          county="历下区", city="济南市", stage="初中", subject="数学"))
        for topic in ("ethics", "steam", "pbl", "big-unit"):
            s.add(SchoolTopic(programme="sd-2022", school_code="370102001", topic=topic))
        for idn in (T_PASS, T_SHORT):
            for c in LESSONS:
                s.add(LessonCaseAssignment(programme="sd-2022", teacher=idn, course=c))
        n = 0
        for idn, electives in ((T_PASS, PASS_ELECTIVES), (T_SHORT, PASS_ELECTIVES[:3])):
            for c in [*LESSONS, "SD22-ETH-01", "SD22-ETH-02", *electives]:
                n += 1
                s.add(LearningRecordRow(programme="sd-2022", teacher=idn, course=c, kind="course", passed=True,
                                        occurred_at=AT, source=f"t:{n}"))
        # withdrawn: must not count
        s.add(LearningRecordRow(programme="sd-2022", teacher=T_SHORT, course="SD22-E-ETHICS-02", kind="course",
                                passed=True, occurred_at=AT, source="t:w", withdrawn_by="t:rev"))


def add_record(store: Store, teacher: str, course: str, source: str) -> None:
    with store.session() as s:
        s.add(LearningRecordRow(programme="sd-2022", teacher=teacher, course=course, kind="course", passed=True,
                                occurred_at=AT, source=source))


def test_evaluate_store_round_trip_and_changes(store: Store, tmp_path: Path) -> None:
    seed(store)
    first = evaluate_store(None, store, programme="sd-2022", chunk_size=2)  # chunks split the roster
    assert (first.evaluated, first.changed, first.new, first.passed, first.failed) == (3, 3, 3, 1, 2)

    ok = stored_result(store, T_PASS, "sd-2022")[0]
    assert ok["passed"] is True and ok["hours"] == 24 and ok["credits"] == 24 and ok["reasons"] == []
    assert ok["components"] == {"lesson_cases": 6, "ethics": 4, "electives": 14}
    short = stored_result(store, T_SHORT)[0]
    assert short["components"]["electives"] == 12  # the withdrawn record did not count
    assert "elective hours 12 < 14" in short["reasons"] and "选修学时 12 < 14" in short["reasons_zh"]
    with store.session() as s:
        row = s.scalars(select(CreditResult).where(CreditResult.teacher == T_SHORT)).one()
        assert row.rule_version == "1" and len(row.rule_hash) == 64 and row.year == 2022
        first_hash = row.result_hash

    again = evaluate_store(None, store, programme="sd-2022")
    assert (again.evaluated, again.changed, again.new, again.updated) == (3, 0, 0, 0)

    add_record(store, T_SHORT, "SD22-E-ETHICS-02", "t:new")  # 14 hours now: passes
    third = evaluate_store(None, store, programme="sd-2022")
    assert third.changed == 1
    with store.session() as s:
        row = s.scalars(select(CreditResult).where(CreditResult.teacher == T_SHORT)).one()
        assert row.passed and row.result_hash != first_hash
        change = s.scalars(select(CreditResultChange).order_by(CreditResultChange.id.desc())).first()
        assert change is not None and change.teacher == T_SHORT and change.rule_changed is False
        assert change.before["passed"] is False and change.after["passed"] is True
        runs = s.scalars(select(CreditEvaluationRun).order_by(CreditEvaluationRun.id)).all()
        assert [r.changed for r in runs] == [3, 0, 1] and all(r.finished_at for r in runs)

    # a changed rule file: the results it moves are logged as changed by the rule
    path = builtin_rule_path("sd-2022")
    assert path is not None
    text = path.read_text(encoding="utf-8").replace('version: "1"', 'version: "2"').replace(
        "minimum: 14", "minimum: 15").replace("cap: 18", "cap: 19")
    rules = tmp_path / "sd-2022.yaml"
    rules.write_text(text, encoding="utf-8")
    fourth = evaluate_store(None, store, programme=str(rules))
    assert fourth.changed == 2  # both 14-hour teachers now fail; the no-record teacher stays failed
    assert fourth.updated == 1  # its reasons are the same, but rule version and hash are new
    with store.session() as s:
        rows = {r.teacher: r for r in s.scalars(select(CreditResult))}
        assert {r.rule_version for r in rows.values()} == {"2"}
        assert not rows[T_PASS].passed
        moved = s.scalars(select(CreditResultChange).where(CreditResultChange.rule_changed.is_(True))).all()
        assert {m.teacher for m in moved} == {T_PASS, T_SHORT}


def test_leavers_results_are_withdrawn(store: Store) -> None:
    seed(store)
    evaluate_store(None, store, programme="sd-2022")
    with store.session() as s:
        s.delete(s.scalars(select(Teacher).where(Teacher.id_number == T_OTHER)).one())
    out = evaluate_store(None, store, programme="sd-2022")
    assert (out.withdrawn, out.changed, out.evaluated) == (1, 1, 2)
    assert stored_result(store, T_OTHER) == []


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(path)


def test_cli_evaluate_and_explain_on_the_store(config: str, db_url: str, runner: CliRunner) -> None:
    from creditbridge.store import open_store

    store = open_store(db_url)
    try:
        seed(store)
    finally:
        store.dispose()
    # --json: the list, per person (issue 6), the same shape as the standalone form's
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--json"])
    assert res.exit_code == 0, res.output
    # keyed by the masked ID number (the three differ in their last two characters)
    listed = {r["teacher"]: r for r in json.loads(res.stdout)}
    assert set(listed) == {mask_id_number(t) for t in (T_PASS, T_SHORT, T_OTHER)}
    listed = {t: listed[mask_id_number(t)] for t in (T_PASS, T_SHORT, T_OTHER)}
    assert set(listed[T_PASS]) == {"teacher", "programme", "role", "hours", "credits", "points", "passed",
                                   "components", "reasons", "reasons_zh"}
    assert {k: listed[T_PASS][k] for k in ("programme", "role", "hours", "credits", "points", "passed")} == {
        "programme": "sd-2022", "role": "teacher", "hours": 24, "credits": 24, "points": None, "passed": True}
    assert listed[T_PASS]["components"] == {"lesson_cases": 6, "ethics": 4, "electives": 14}
    assert listed[T_SHORT]["passed"] is False and "elective hours 12 < 14" in listed[T_SHORT]["reasons"]
    # --summary --json: the run's counts; a second run changes nothing (issue 16: nobody is marked, so nobody is
    # evaluated; --all evaluates everyone again)
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--summary", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["evaluated"], doc["changed"]) == (0, 0)
    assert doc["programmes"]["sd-2022"]["mode"] == "incremental"
    # the document's shape, key order included, is what scripts and the scheduler ledger read (EvaluateResult)
    assert list(doc) == ["evaluated", "changed", "new", "updated", "withdrawn", "passed", "failed", "programmes",
                         "marks_disposed"]
    assert doc["marks_disposed"] == {}
    incremental = doc["programmes"]["sd-2022"]
    assert list(incremental) == ["evaluated", "changed", "run_id", "rule_version", "rule_hash", "mode", "reason",
                                 "marked"]
    assert (incremental["reason"], incremental["marked"]) == ("0 marked teacher(s)", 0)
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--all", "--summary", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["evaluated"], doc["changed"], doc["passed"], doc["failed"]) == (3, 0, 1, 2)
    assert doc["programmes"]["sd-2022"]["rule_version"] == "1"
    assert (doc["programmes"]["sd-2022"]["mode"], doc["programmes"]["sd-2022"]["reason"]) == ("all", "--all")
    assert list(doc["programmes"]["sd-2022"]) == ["evaluated", "changed", "run_id", "rule_version", "rule_hash",
                                                  "mode", "reason"]  # no "marked" in a full run
    assert doc["programmes"]["sd-2022"]["run_id"] > incremental["run_id"]
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--all"])
    assert res.exit_code == 0 and "3 result(s) evaluated, 0 result(s) changed" in res.output
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--list", "--json"])  # the old spelling
    assert {r["teacher"] for r in json.loads(res.stdout)} == {mask_id_number(t) for t in (T_PASS, T_SHORT, T_OTHER)}

    res = runner.invoke(cli, ["--config", config, "credits", "explain", T_SHORT])
    assert res.exit_code == 0, res.output
    assert T_SHORT not in res.output and "3701" in res.output  # masked
    # report.language, zh-CN by default: the table's words and the reasons in Chinese; English when set.
    assert "选修学时 12 < 14" in res.output and "学分" in res.output and "elective hours" not in res.output
    english = Path(config).with_name("english.toml")
    english.write_text(Path(config).read_text(encoding="utf-8") + '[report]\nlanguage = "en"\n', encoding="utf-8")
    res = runner.invoke(cli, ["--config", str(english), "credits", "explain", T_SHORT])
    assert res.exit_code == 0, res.output
    assert "elective hours 12 < 14" in res.output and "credits" in res.output and "选修" not in res.output
    res = runner.invoke(cli, ["--config", config, "credits", "explain", T_SHORT, "--json"])
    assert json.loads(res.stdout)["components"]["electives"] == 12
    res = runner.invoke(cli, ["--config", config, "credits", "explain", "110101199003074514"])
    assert res.exit_code == 2 and "no credit result" in res.output and "110101199003074514" not in res.output


def test_cli_standalone_with_the_sample_files(tmp_path: Path, runner: CliRunner) -> None:
    records = tmp_path / "records.jsonl"
    lines = []
    for i, c in enumerate([*LESSONS, "SD22-ETH-01", "SD22-ETH-02", "SD22-E-STEAM-04", "SD22-E-PBL-04",
                           "SD22-E-BIG-UNIT-04", "SD22-E-ETHICS-02", "SD22-E-SAFETY-04"]):
        lines.append({"teacher": T_PASS, "programme": "sd-2022", "course": c, "activity": None, "kind": "course",
                      "hours": None, "minutes": None, "score": None, "passed": True,
                      "occurred_at": "2022-09-01T10:00:00+08:00", "source": f"s{i}"})
    records.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assignments = tmp_path / "assignments.csv"
    assignments.write_text("teacher,course\n" + "".join(f"{T_PASS},{c}\n" for c in LESSONS), encoding="utf-8")
    topics = tmp_path / "topics.csv"
    topics.write_text("school,topic\n370102001,ethics\n370102001,steam\n370102001,pbl\n370102001,big-unit\n",
                      encoding="utf-8")
    args = ["credits", "evaluate", "--programme", "sd-2022", "--roster", str(SAMPLES / "sd-2022" / "roster.csv"),
            "--catalog", str(SAMPLES / "sd-2022" / "catalog.csv"), "--topics", str(topics), "--records", str(records),
            "--assignments", str(assignments)]
    res = runner.invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out) == 11  # every roster row
    me = next(r for r in out if r["teacher"] == mask_id_number(T_PASS))  # masked in the JSON too
    assert {k: me[k] for k in ("programme", "role", "hours", "credits", "points", "passed")} == {
        "programme": "sd-2022", "role": "teacher", "hours": 24, "credits": 24, "points": None, "passed": True}
    assert me["components"] == {"lesson_cases": 6, "ethics": 4, "electives": 14}
    assert me["reasons"] == ["elective SD22-E-SAFETY-04 outside the school's topics (safety): not counted"]
    table = runner.invoke(cli, args)
    assert table.exit_code == 0 and "sd-2022 v1: 11 result(s)" in table.output and T_PASS not in table.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**lines[0], "teacher": "370102198602110012"}) + "\n", encoding="utf-8")
    res = runner.invoke(cli, [*args[:-4], "--records", str(bad), "--json"])
    assert res.exit_code == 2 and "bad.jsonl line 1, field teacher" in res.output
    assert "370102198602110012" not in res.output
    res = runner.invoke(cli, ["credits", "evaluate", "--roster", str(SAMPLES / "sd-2022" / "roster.csv"), "--json"])
    assert res.exit_code == 2 and "--programme" in res.output


def test_worker_processes_give_the_same_results(store: Store) -> None:
    seed(store)
    with store.session() as s:  # more teachers so the two key ranges both hold some
        for i in range(1, 9):
            s.add(Teacher(programme="sd-2022", id_number=f"11010119900101{i:03d}X"[:18], name="教师",
                          school_code="370102001", school_name="学校", county="历下区", city="济南市", stage="初中",
                          subject="数学"))
    one = evaluate_store(None, store, programme="sd-2022")
    with store.session() as s:
        before = {(r.teacher, r.role): (r.result_hash, r.reasons) for r in s.scalars(select(CreditResult))}
        s.execute(CreditResult.__table__.delete())
    two = evaluate_store(None, store, programme="sd-2022", workers=2, chunk_size=3)
    assert (two.evaluated, two.new, two.passed) == (one.evaluated, one.new, one.passed) == (11, 11, 1)
    with store.session() as s:
        after = {(r.teacher, r.role): (r.result_hash, r.reasons) for r in s.scalars(select(CreditResult))}
    assert after == before


def test_cli_json_on_an_empty_store_is_an_empty_list(config: str, runner: CliRunner) -> None:
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []
    res = runner.invoke(cli, ["--config", config, "credits", "evaluate", "--summary", "--json"])
    assert json.loads(res.stdout)["evaluated"] == 0


def test_a_component_window_applies_on_the_store(store: Store, tmp_path: Path) -> None:
    """A component with a window of its own needs each record's time from the store (both backends):
    the lesson cases, done on 1 Sep, fall after a lesson-case window ending 31 Aug."""
    seed(store)
    text = builtin_rule_path("sd-2022").read_text(encoding="utf-8").replace(
        "        hours_each: 2\n", "        hours_each: 2\n        window: {start: 2022-08-01, end: 2022-08-31}\n", 1)
    assert "end: 2022-08-31" in text
    rule = tmp_path / "sd-2022.yaml"
    rule.write_text(text, encoding="utf-8")
    first = evaluate_store(None, store, programme=str(rule))
    assert first.evaluated == 3
    r = stored_result(store, T_PASS, "sd-2022")[0]
    assert r["components"]["lesson_cases"] == 0 and r["components"]["electives"] == 14
    assert "record after the window: SD22-L-M-MATH-001 (2022-08-01 – 2022-08-31), not counted" in r["reasons"]
    assert not r["passed"]
    again = evaluate_store(None, store, programme=str(rule))
    assert (again.changed, again.new, again.updated) == (0, 0, 0)  # the fingerprint holds the times too
    with store.session() as s:
        s.add(LearningRecordRow(programme="sd-2022", teacher=T_PASS, course="SD22-L-M-MATH-002", kind="course",
                                passed=True, occurred_at=datetime(2022, 8, 20, 2, 0, tzinfo=UTC), source="t:aug"))
    third = evaluate_store(None, store, programme=str(rule))
    assert third.changed == 1
    assert stored_result(store, T_PASS, "sd-2022")[0]["components"]["lesson_cases"] == 2
