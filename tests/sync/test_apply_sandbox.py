"""Acceptance: the sync commands against the sandbox LMS over real HTTP, as an operator runs them.

Every test drives `creditbridge sync ...` through click's CliRunner with the settings pointing at the
sandbox (CREDITBRIDGE_MOODLE_URL/TOKEN) and a fresh store (CREDITBRIDGE_DATABASE_URL), then checks
what Moodle holds through the Moodle client.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select
from sync_helpers import (
    CATALOG_HEADER,
    SAMPLES,
    Env,
    client_for,
    custom,
    enrolled_codes,
    make_env,
    open_codes,
    people,
    sandbox_users,
    stored_teachers,
    write_csv,
    write_roster,
)

from creditbridge.i18n import words
from creditbridge.store import open_store
from creditbridge.store.models.core import LessonCaseAssignment
from creditbridge.sync.moodle_users import username_for
from creditbridge.sync.records import RosterRow

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default

RECORDER = "370102198001151010"  # recorded SD22-L-M-MATH-001 and is on the sample roster


def _username(env: Env, id_number: str) -> str:
    row = RosterRow(0, id_number, "x", "s", "s", "c", "c", "middle", None, False, "active")
    return username_for(env.settings.sync, row)


def _assignments(env: Env) -> dict[str, set[str]]:
    store = open_store(env.settings.database.url)
    out: dict[str, set[str]] = {}
    try:
        with store.session() as s:
            for a in s.scalars(select(LessonCaseAssignment)):
                out.setdefault(a.teacher, set()).add(a.course)
    finally:
        store.dispose()
    return out


def _sync_samples(env: Env, runner: CliRunner) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    catalog = env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    topics = env.sync(runner, "topics", SAMPLES / "topics.csv")
    roster = env.sync(runner, "roster", SAMPLES / "roster.csv")
    return catalog, topics, roster


def test_samples_sync_everything_and_an_unchanged_rerun_makes_no_write_call(
        tmp_path: Path, db_url: str, runner: CliRunner, sandbox: Any) -> None:
    env = make_env(tmp_path, sandbox, db_url)  # on SQLite and on PostgreSQL
    catalog, topics, roster = _sync_samples(env, runner)
    assert catalog["created"] == 57 and catalog["errors"] == [] and catalog["lms_calls"] > 0
    assert topics["created"] == 13 and topics["errors"] == []
    assert roster["created"] == 11 and roster["errors"] == []
    assert roster["lesson_cases_assigned"] == 33
    assert set(roster) == {"created", "updated", "transferred", "suspended", "reactivated", "unchanged",
                           "lesson_cases_assigned", "held", "lms_calls", "run_id", "errors", "errors_omitted",
                           "report", "notes"}
    assert all(isinstance(roster[k], int) for k in roster if k not in ("errors", "report", "notes"))
    assert roster["notes"] == []  # nothing a person should know beyond the counts

    client = client_for(sandbox)
    teachers = stored_teachers(env)
    users = sandbox_users(client, [t.username for t in teachers.values()])
    assert len(users) == 11
    t01 = teachers["370102198602110011"]
    u01 = users[t01.username]
    assert u01["id"] == t01.moodle_user_id
    # The ID number is not sent: neither as idnumber nor inside the username.
    assert u01.get("idnumber", "") == "" and "370102198602110011" not in u01["username"]
    assert custom(u01, "schoolcode") == "370102001" and custom(u01, "stage") == "Secondary"
    assert custom(u01, "county") == "历下区" and custom(u01, "city") == "济南市"
    assert str(custom(u01, "rural")) == "0" and str(custom(users[teachers["37010219890514004X"].username],
                                                           "rural")) == "1"
    assert u01["email"] == f"{t01.username}@teachers.invalid"

    # Middle-school maths at school 370102001: the 2 required courses and 3 lesson cases are enrolled; its 4 ethics,
    # 5 x 4 topic and 3 subject electives are open to it by self enrolment (electives = "self", the default).
    codes = enrolled_codes(client, t01.moodle_user_id)
    cases = _assignments(env)
    assert codes == {"SD22-ETH-01", "SD22-ETH-02"} | cases["370102198602110011"]
    opened = open_codes(sandbox, t01.moodle_user_id)
    assert {"SD22-E-STEAM-04", "SD22-S-M-MATH-03"} <= opened and len(opened) == 4 + 20 + 3
    assert not any(c.startswith("SD22-E-SAFETY") for c in opened)  # not a topic of this school

    # Primary Chinese at 370102002 (ethics, family-education, safety): no maths anything.
    t02 = teachers["370102198703120024"]
    codes02 = enrolled_codes(client, t02.moodle_user_id) | open_codes(sandbox, t02.moodle_user_id)
    assert len(codes02) == 2 + 12 + 3 and not any("MATH" in c for c in codes02)

    for kind, path in (("catalog", "catalog.csv"), ("topics", "topics.csv"), ("roster", "roster.csv")):
        again = env.sync(runner, kind, SAMPLES / path)
        assert again["lms_calls"] == 0, (kind, again)
        assert again["created"] == again["updated"] == again["lesson_cases_assigned"] == 0
    assert again["unchanged"] == 11
    assert _assignments(env) == cases


def test_lesson_cases_count_distinct_not_own_and_balanced_in_moodle(env: Env, runner: CliRunner,
                                                                    sandbox: Any) -> None:
    _sync_samples(env, runner)
    cases = _assignments(env)
    teachers = stored_teachers(env)
    assert set(cases) == set(teachers)
    for teacher, codes in cases.items():
        assert len(codes) == 3
        t = teachers[teacher]
        prefix = "SD22-L-M-MATH-" if t.stage == "middle" else "SD22-L-P-CHN-"
        assert all(c.startswith(prefix) for c in codes)
    assert "SD22-L-M-MATH-001" not in cases[RECORDER]
    load = Counter(c for codes in cases.values() for c in codes)
    maths = [load[f"SD22-L-M-MATH-{i:03d}"] for i in range(1, 9)]
    chinese = [load[f"SD22-L-P-CHN-{i:03d}"] for i in range(1, 5)]
    assert max(maths) - min(maths) <= 1 and max(chinese) - min(chinese) <= 1
    # Enrolled in Moodle like any course, and marked so.
    client = client_for(sandbox)
    for teacher, codes in cases.items():
        assert codes <= enrolled_codes(client, teachers[teacher].moodle_user_id)
    store = open_store(env.settings.database.url)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(LessonCaseAssignment)
                        .where(LessonCaseAssignment.enrolled.is_(False))) == 0
    store.dispose()


def test_new_teachers_leave_existing_lesson_cases_alone_and_keep_balance(tmp_path: Path, env: Env,
                                                                         runner: CliRunner) -> None:
    pool = [[f"C-{i:02d}", f"课例{i}", "lesson_case", "", "online", 2, "初中", "物理", "济南市", ""] for i in range(7)]
    write_csv(tmp_path / "catalog.csv", CATALOG_HEADER, pool)
    env.sync(runner, "catalog", tmp_path / "catalog.csv")
    first = people(10, subject="物理")
    env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", first))
    before = _assignments(env)
    assert len(before) == 10 and all(len(v) == 3 for v in before.values())

    more = first + people(11, start=50, subject="物理")
    out = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", more))
    assert out["created"] == 11 and out["lesson_cases_assigned"] == 33
    after = _assignments(env)
    assert {k: after[k] for k in before} == before
    load = Counter(c for codes in after.values() for c in codes)
    assert len(load) == 7 and max(load.values()) - min(load.values()) <= 1  # 63 over 7 cases: 9 each
    assert set(load.values()) == {9}


def test_each_validation_failure_is_reported_and_good_rows_still_sync(tmp_path: Path, env: Env,
                                                                      runner: CliRunner, sandbox: Any) -> None:
    good = people(3)
    bad_check = good[0].id_number[:17] + ("0" if good[0].id_number[17] != "0" else "1")
    dup = people(1, start=40)[0]
    rows: list[Any] = [
        *good,                                                              # rows 2-4
        people(1, start=20)[0].moved(id_number=bad_check),                  # row 5: check digit
        people(1, start=21)[0].moved(name=""),                              # row 6: required field
        people(1, start=22)[0].moved(stage="大学"),                          # row 7: unknown stage
        people(1, start=23)[0].moved(stage="小学", subject="物理"),           # row 8: subject not in stage
        dup, dup.moved(name="另一个"),                                        # rows 9, 10: same ID number
        people(1, start=24)[0].moved(rural="也许"),                          # row 11: rural flag
        people(1, start=25)[0].moved(status="放假"),                          # row 12: status
        people(1, start=26)[0].moved(stage="幼儿园", subject="数学"),          # row 13: kindergarten, no subject
    ]
    out = env.sync(runner, "roster", write_roster(tmp_path / "roster.csv", rows))
    assert out["created"] == 3
    by_row: dict[int, set[str]] = {}
    for e in out["errors"]:
        assert e["reason"]
        by_row.setdefault(e["row"], set()).add(e["column"])
    assert by_row[5] == {"身份证号"}
    assert by_row[6] == {"姓名"}
    assert by_row[7] == {"学段"} or "学段" in by_row[7]
    assert "学科" in by_row[8]
    assert by_row[9] == by_row[10] == {"身份证号"}
    assert by_row[11] == {"是否乡村教师"}
    assert by_row[12] == {"任职状态"}
    assert by_row[13] == {"学科"}
    assert all(bad_check not in e["reason"] for e in out["errors"])  # masked, never in full
    users = sandbox_users(client_for(sandbox), [_username(env, p.id_number) for p in good])
    assert len(users) == 3

    report = load_workbook(out["report"], read_only=True)
    assert report.sheetnames == ["汇总", "错误", "计划"]  # the default language, zh-CN
    sheet_rows = [tuple(c for c in r) for r in report[ZH("sync.sheet.errors")].iter_rows(min_row=2, values_only=True)]
    assert {(r, c) for r, c, _ in sheet_rows} == {(e["row"], e["column"]) for e in out["errors"]}
    summary = dict(report[ZH("sync.sheet.summary")].iter_rows(min_row=2, values_only=True))
    assert summary["运行编号"] == out["run_id"] and summary[ZH("sync.count.created")] == 3


def test_transfers_across_school_county_and_city_move_cohort_memberships(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    staff = people(4)
    env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", staff))
    moved = [
        staff[0].moved(school="370102009", school_name="济南市历下区第九中学"),                    # school only
        staff[1].moved(school="370103001", school_name="济南市市中区第一中学", county="市中区"),     # county
        staff[2].moved(school="370202001", school_name="青岛市市南区第二中学", county="市南区",
                       city="青岛市"),                                                            # city
        staff[3],
    ]
    out = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", moved))
    assert out["transferred"] == 3 and out["unchanged"] == 1 and out["errors"] == []

    client = client_for(sandbox)
    teachers = stored_teachers(env)
    ids = {p.id_number: teachers[p.id_number].moodle_user_id for p in staff}
    cohorts = {c["idnumber"]: c["id"] for q in ("school:", "county:", "city:") for c in client.search_cohorts(
        q, perpage=100)}
    members = {m["cohortid"]: set(m["userids"]) for m in client.get_cohort_members(list(cohorts.values()))}

    def in_cohort(idnumber: str) -> set[int]:
        return members.get(cohorts.get(idnumber, -1), set())

    a, b, c, d = (ids[p.id_number] for p in staff)
    assert in_cohort("school:370102001") == {d}
    assert in_cohort("school:370102009") == {a}
    assert in_cohort("school:370103001") == {b}
    assert in_cohort("school:370202001") == {c}
    assert in_cohort("county:济南市/历下区") == {a, d}
    assert in_cohort("county:济南市/市中区") == {b}
    assert in_cohort("county:青岛市/市南区") == {c}
    assert in_cohort("city:济南市") == {a, b, d}
    assert in_cohort("city:青岛市") == {c}
    user_c = sandbox_users(client, [teachers[staff[2].id_number].username])[teachers[staff[2].id_number].username]
    assert custom(user_c, "city") == "青岛市" and custom(user_c, "schoolcode") == "370202001"
    assert env.sync(runner, "roster", tmp_path / "r2.csv")["lms_calls"] == 0


def test_leaver_is_suspended_never_deleted_then_reactivated(tmp_path: Path, env: Env, runner: CliRunner,
                                                            sandbox: Any) -> None:
    staff = people(12)  # one leaver of 12 stays under the 10% mass-suspension guard
    env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", staff))
    leaver = staff[2]
    out = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", [*staff[:2], leaver.moved(status="离职"),
                                                                          *staff[3:]]))
    assert out["suspended"] == 1 and out["held"] == 0
    client = client_for(sandbox)
    username = stored_teachers(env)[leaver.id_number].username
    assert sandbox_users(client, [username])[username]["suspended"] is True
    assert stored_teachers(env)[leaver.id_number].status == "suspended"

    back = env.sync(runner, "roster", write_roster(tmp_path / "r3.csv", staff))
    assert back["reactivated"] == 1
    assert sandbox_users(client, [username])[username]["suspended"] is False
    assert stored_teachers(env)[leaver.id_number].status == "active"


def test_mass_suspension_is_held_back_until_forced(tmp_path: Path, env: Env, runner: CliRunner,
                                                   sandbox: Any) -> None:
    staff = people(10)
    env.sync(runner, "roster", write_roster(tmp_path / "full.csv", staff))
    truncated = write_roster(tmp_path / "truncated.csv", [*staff[:5], *people(1, start=77)])
    out = env.sync(runner, "roster", truncated)
    assert out["held"] == 5 and out["suspended"] == 0
    assert out["created"] == 1  # creates still apply
    client = client_for(sandbox)
    names = [stored_teachers(env)[p.id_number].username for p in staff[5:]]
    assert not any(u["suspended"] for u in sandbox_users(client, names).values())

    forced = env.sync(runner, "roster", truncated, "--force")
    assert forced["suspended"] == 5 and forced["held"] == 0
    assert all(u["suspended"] for u in sandbox_users(client, names).values())
    # A delta file never suspends the absent.
    delta = env.sync(runner, "roster", write_roster(tmp_path / "delta.csv", staff[:1]), "--delta")
    assert delta["suspended"] == 0 and delta["held"] == 0


def test_topics_rules_refuse_the_file_and_chosen_topics_drive_enrolment(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    too_many = write_csv(tmp_path / "many.csv", ["school", "topic"], [
        ("S1", t) for t in ("ethics", "class-management", "mental-health", "steam", "pbl", "big-unit", "labour")])
    refused = env.sync(runner, "topics", too_many, expect=1)
    assert any("S1" in e["reason"] and "at most 6" in e["reason"] for e in refused["errors"])
    no_ethics = write_csv(tmp_path / "noethics.csv", ["school", "topic"], [("S2", "steam"), ("S3", "ethics")])
    refused = env.sync(runner, "topics", no_ethics, expect=1)
    assert [e["row"] for e in refused["errors"]] == [2] and "S2" in refused["errors"][0]["reason"]
    assert refused["created"] == 0

    ok = write_csv(tmp_path / "ok.csv", ["school", "topic"], [("370102001", "ethics"), ("370102001", "steam"),
                                                               ("370102001", "no-such-topic")])
    out = env.sync(runner, "topics", ok)
    assert out["created"] == 2 and [e["row"] for e in out["errors"]] == [4]
    staff = people(2)
    env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    teacher = stored_teachers(env)[staff[0].id_number]
    codes = open_codes(sandbox, teacher.moodle_user_id)
    assert {f"SD22-E-STEAM-0{i}" for i in range(1, 5)} <= codes
    assert not any(c.startswith("SD22-E-PBL") for c in codes)

    # The school adds a topic: its teachers join the topic's audience cohort (one call: 2 memberships) and its
    # electives open to them; nothing else is sent.
    more = write_csv(tmp_path / "more.csv", ["school", "topic"], [("370102001", "ethics"), ("370102001", "steam"),
                                                                   ("370102001", "pbl")])
    added = env.sync(runner, "topics", more)
    assert added["created"] == 1 and added["lms_calls"] == 1
    assert {f"SD22-E-PBL-0{i}" for i in range(1, 5)} <= open_codes(sandbox, teacher.moodle_user_id)


def test_dry_run_plans_and_changes_nothing(tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    staff = people(3)
    out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff), "--dry-run")
    assert out["created"] == 3 and out["lms_calls"] == 0
    assert stored_teachers(env) == {}
    assert sandbox_users(client_for(sandbox), [_username(env, p.id_number) for p in staff]) == {}
    plan = load_workbook(out["report"], read_only=True)[ZH("sync.sheet.plan")]
    assert [r[0] for r in plan.iter_rows(min_row=2, values_only=True)] == ["create"] * 3


def test_runs_are_listed(tmp_path: Path, env: Env, runner: CliRunner) -> None:
    import json

    env.sync(runner, "roster", write_roster(tmp_path / "r.csv", people(2)))
    env.sync(runner, "roster", tmp_path / "r.csv", "--dry-run")
    result = env.run(runner, "sync", "runs", "--json")
    runs = json.loads(result.stdout)
    assert [r["kind"] for r in runs] == ["roster", "roster"]
    assert runs[0]["dry_run"] is True and runs[1]["counts"]["created"] == 2 and runs[1]["outcome"] == "ok"
    assert Path(runs[1]["report"]).exists()
    text = env.run(runner, "sync", "runs")
    assert "roster" in text.output and text.exit_code == 0


def test_unreadable_file_is_fatal(tmp_path: Path, env: Env, runner: CliRunner) -> None:
    result = env.run(runner, "sync", "roster", str(tmp_path / "missing.csv"), "--json")
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    result = env.run(runner, "sync", "roster", str(tmp_path / "junk.csv"))
    assert result.exit_code == 2 and "身份证号" in result.output


def test_catalog_changes_update_courses_and_a_grown_pool_tops_teachers_up(
        tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    def case(i: int, hours: object = 2) -> list[object]:
        return [f"C-{i:02d}", f"课例{i}", "lesson_case", "", "online", hours, "初中", "化学", "济南市", ""]

    env.sync(runner, "catalog", write_csv(tmp_path / "c1.csv", CATALOG_HEADER, [case(1), case(2)]))
    staff = people(4, subject="化学")
    out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    assert out["lesson_cases_assigned"] == 8 and out["errors"] == []  # a pool of 2: two each for now
    assert all(len(v) == 2 for v in _assignments(env).values())

    grown = env.sync(runner, "catalog", write_csv(tmp_path / "c2.csv", CATALOG_HEADER,
                                                  [case(1, "2.5"), case(2), case(3), case(4)]))
    assert grown["created"] == 2 and grown["updated"] == 1 and grown["unchanged"] == 1
    assert grown["lesson_cases_assigned"] == 4
    cases = _assignments(env)
    assert all(len(v) == 3 for v in cases.values())
    client = client_for(sandbox)
    teachers = stored_teachers(env)
    for p in staff:
        assert cases[p.id_number] <= enrolled_codes(client, teachers[p.id_number].moodle_user_id)
    course = client.get_courses_by_field("idnumber", "C-01")[0]
    hours = {f["shortname"]: f.get("value") for f in course.get("customfields", [])}["credit_hours"]
    assert float(hours) == 2.5 and course["enablecompletion"] in (1, True)
    assert env.sync(runner, "catalog", tmp_path / "c2.csv")["lms_calls"] == 0


def test_an_edited_teacher_is_updated_in_moodle(tmp_path: Path, env: Env, runner: CliRunner, sandbox: Any) -> None:
    staff = people(3)
    env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", staff))
    edited = [staff[0].moved(name="李四", rural="是", email="li.si@school.example.cn"), *staff[1:]]
    out = env.sync(runner, "roster", write_roster(tmp_path / "r2.csv", edited))
    assert out["updated"] == 1 and out["unchanged"] == 2 and out["transferred"] == 0
    assert out["lms_calls"] == 1  # the account only: cohorts and enrolments did not change
    username = stored_teachers(env)[staff[0].id_number].username
    user = sandbox_users(client_for(sandbox), [username])[username]
    assert (user["lastname"], user["firstname"], user["email"]) == ("李", "四", "li.si@school.example.cn")
    assert str(custom(user, "rural")) == "1"


def test_catalog_and_topics_row_failures_are_reported_and_good_rows_sync(tmp_path: Path, env: Env,
                                                                         runner: CliRunner, sandbox: Any) -> None:
    rows = [
        ["OK-1", "好课", "required", "ethics", "online", 2, "", "", "", ""],          # row 2
        ["BAD-KIND", "课", "lecture", "", "online", 2, "", "", "", ""],               # row 3
        ["BAD-HOURS", "课", "elective", "steam", "online", "two", "", "", "", ""],    # row 4
        ["DUP", "课", "elective", "steam", "online", 1, "", "", "", ""],              # row 5
        ["DUP", "课", "elective", "steam", "online", 1, "", "", "", ""],              # row 6
        ["BAD-STAGE", "课", "elective", "steam", "online", 1, "大学", "", "", ""],     # row 7
        ["OK-2", "好课二", "elective", "steam", "online", 1, "", "", "", ""],          # row 8
    ]
    out = env.sync(runner, "catalog", write_csv(tmp_path / "catalog.csv", CATALOG_HEADER, rows))
    assert out["created"] == 2
    assert {(e["row"], e["column"]) for e in out["errors"]} >= {(3, "kind"), (4, "hours"), (5, "code"), (6, "code"),
                                                                (7, "stage")}
    client = client_for(sandbox)
    assert client.get_courses_by_field("idnumber", "OK-2") and not client.get_courses_by_field("idnumber", "DUP")

    topics = env.sync(runner, "topics", write_csv(tmp_path / "topics.csv", ["school", "topic"],
                                                  [("S1", "ethics"), ("", "steam"), ("S1", "")]))
    assert topics["created"] == 1
    assert {(e["row"], e["column"]) for e in topics["errors"]} == {(3, "school"), (4, "topic")}
