"""Acceptance: the enrolment policy (docs/sync.md "Enrolment policy") end to end, the CLI against the sandbox.

Required courses and lesson cases are enrolled up front (manual, no welcome message); the electives meant for
a teacher are open to them by cohort-restricted self enrolment, and they enrol themselves (`creditbridge sandbox
enrol-me`, the "Enrol me" button) in what they choose. Transfers, leavers and an unchanged re-sync as sync.md
says; a role without the new capability is a clear run error.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from recorded_site import recorded_site
from sqlalchemy import select
from sync_helpers import (
    SAMPLES,
    Env,
    admin_get,
    client_for,
    codes_by_id,
    enrolled_codes,
    make_env,
    open_codes,
    people,
    stored_teachers,
    write_roster,
)

from creditbridge.cli.main import cli
from creditbridge.connector.functions import (
    CONFIGURE_ENROLMENT_FUNCTION,
    WELCOME_COURSES_FUNCTION,
    WELCOME_COURSES_SINCE,
)
from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.sync import CohortMember
from creditbridge.sync.electives import audience_idnumber

T01 = "370102198602110011"  # middle-school maths, school 370102001 (topics incl. steam, pbl, big-unit)
REQUIRED = {"SD22-ETH-01", "SD22-ETH-02"}


def _audiences_in_store(env: Env, teacher: str) -> set[str]:
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            return {c for c in s.scalars(select(CohortMember.cohort).where(CohortMember.teacher == teacher))
                    if c.startswith("audience:")}
    finally:
        store.dispose()


def _manual_enrolments(sandbox: Any, userid: int) -> int:
    return int(sandbox.state.scalar("SELECT COUNT(*) FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid "
                                    "WHERE e.enrol = 'manual' AND ue.userid = ?", userid))


def _enrol_me(runner: CliRunner, sandbox: Any, userid: int, courseid: int, *, expect: int = 0) -> str:
    result = runner.invoke(cli, ["sandbox", "enrol-me", "--url", sandbox.url, "--token", sandbox.token,
                                 "--userid", str(userid), "--courseid", str(courseid)], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


def _electives_meant_for_t01() -> set[str]:
    # School 370102001's topics (class-management, mental-health, steam, pbl, big-unit), ethics (mandatory) and
    # the free `subject` topic of middle-school maths.
    with (SAMPLES / "catalog.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    topics = {"ethics", "class-management", "mental-health", "steam", "pbl", "big-unit", "subject"}
    return {r["code"] for r in rows if r["kind"] == "elective" and r["topic"] in topics
            and r["stage"] in ("", "初中") and r["subject"] in ("", "数学")}


def _sync_samples(env: Env, runner: CliRunner, roster: Path = SAMPLES / "roster.csv") -> dict[str, Any]:
    for kind, path in (("catalog", SAMPLES / "catalog.csv"), ("topics", SAMPLES / "topics.csv")):
        out = env.sync(runner, kind, path)
        assert out["errors"] == [], out["errors"][:3]
    out = env.sync(runner, "roster", roster)
    assert out["errors"] == [], out["errors"][:3]
    return out


def test_a_new_teacher_is_enrolled_in_what_is_required_and_the_electives_open_to_them(
        env: Env, runner: CliRunner, sandbox: Any) -> None:
    roster = _sync_samples(env, runner)
    assert roster["created"] == 11
    teachers = stored_teachers(env)
    client = client_for(sandbox)
    t01 = teachers[T01]
    uid = t01.moodle_user_id
    codes = enrolled_codes(client, uid)
    cases = {c for c in codes if c.startswith("SD22-L-")}
    assert codes == REQUIRED | cases and len(cases) == 3, codes
    # Every new teacher: at most 5 manual enrolments (2 required courses + 3 lesson cases), no welcome message,
    # although the site's default for manual enrolment is to send one.
    for t in teachers.values():
        assert _manual_enrolments(sandbox, t.moodle_user_id) <= 5
    assert sandbox.state.welcome_default() == 1
    assert admin_get(sandbox, "welcome_messages")["messages"] == []
    # The electives meant for the teacher, and only those, show "Enrol me".
    meant = _electives_meant_for_t01()
    assert len(meant) == 4 + 5 * 4 + 3  # ethics, the school's five other topics, the subject electives
    assert open_codes(sandbox, uid) == meant
    # A teacher of another school (other topics, primary Chinese) sees other electives open.
    t02 = teachers["370102198703120024"]
    open02 = open_codes(sandbox, t02.moodle_user_id)
    assert "SD22-E-FAMILY-EDUCATION-01" in open02 and not open02 & {"SD22-E-STEAM-01", "SD22-S-M-MATH-01"}

    # The teacher chooses one; nothing is mailed for it either.
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    _enrol_me(runner, sandbox, uid, ids["SD22-E-STEAM-02"])
    assert "SD22-E-STEAM-02" in enrolled_codes(client, uid)
    assert "SD22-E-STEAM-02" not in open_codes(sandbox, uid)
    assert admin_get(sandbox, "welcome_messages")["messages"] == []
    # Not meant for them: refused with Moodle's reason.
    refused = _enrol_me(runner, sandbox, uid, ids["SD22-E-FAMILY-EDUCATION-01"], expect=2)
    assert "Only members of cohort" in refused

    # Unchanged re-syncs send nothing.
    for kind in ("catalog", "topics", "roster"):
        again = env.sync(runner, kind, SAMPLES / f"{kind}.csv")
        assert again["lms_calls"] == 0, (kind, again)


def test_a_transfer_opens_the_new_schools_electives_and_keeps_what_was_taken(
        env: Env, runner: CliRunner, sandbox: Any, tmp_path: Path) -> None:
    _sync_samples(env, runner)
    uid = stored_teachers(env)[T01].moodle_user_id
    client = client_for(sandbox)
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    _enrol_me(runner, sandbox, uid, ids["SD22-E-STEAM-01"])
    cm = sandbox.state.add_course_module(ids["SD22-E-STEAM-01"], "page", "Lesson 1")
    sandbox.state.set_activity_completion(cm, uid, 1)

    # T01 moves to 青岛市市南区第二中学 (370202001: research-methods, labour, class-management).
    with (SAMPLES / "roster.csv").open(encoding="gb18030") as f:
        rows = [[*r, ""] for r in list(csv.reader(f))[1:]]  # the helper's header has 邮箱 too
    moved = [r if r[0] != T01 else [T01, r[1], "370202001", "青岛市市南区第二中学", "市南区", "青岛市", *r[6:]]
             for r in rows]
    out = env.sync(runner, "roster", write_roster(tmp_path / "moved.csv", moved))
    assert out["transferred"] == 1 and out["errors"] == []

    open_now = open_codes(sandbox, uid)
    assert {"SD22-E-RESEARCH-METHODS-01", "SD22-E-LABOUR-01", "SD22-E-CLASS-MANAGEMENT-01"} <= open_now
    assert not {c for c in open_now if c.startswith(("SD22-E-STEAM-", "SD22-E-PBL-", "SD22-E-BIG-UNIT-"))}
    # What was taken stays, with its progress; no enrolment was removed.
    assert "SD22-E-STEAM-01" in enrolled_codes(client, uid)
    assert sandbox.state.scalar("SELECT completionstate FROM course_modules_completion WHERE coursemoduleid = ? "
                                "AND userid = ?", cm, uid) == 1
    audiences = _audiences_in_store(env, T01)
    assert "audience:sd-2022/research-methods/*/*" in audiences and "audience:sd-2022/steam/*/*" not in audiences


def test_a_leaver_leaves_every_audience_and_keeps_their_enrolments(
        env: Env, runner: CliRunner, sandbox: Any, tmp_path: Path) -> None:
    _sync_samples(env, runner)
    uid = stored_teachers(env)[T01].moodle_user_id
    client = client_for(sandbox)
    before = enrolled_codes(client, uid)
    assert len(_audiences_in_store(env, T01)) == 7  # 5 topics + ethics + the subject electives of middle maths
    with (SAMPLES / "roster.csv").open(encoding="gb18030") as f:
        rows = [[*r, ""] for r in list(csv.reader(f))[1:]]  # the helper's header has 邮箱 too
    left = [r if r[0] != T01 else [*r[:9], "离职", ""] for r in rows]
    out = env.sync(runner, "roster", write_roster(tmp_path / "left.csv", left))
    assert out["suspended"] == 1 and out["errors"] == []
    assert _audiences_in_store(env, T01) == set()
    assert not sandbox.state.rows("SELECT m.id FROM cohort_members m JOIN cohort c ON c.id = m.cohortid "
                                  "WHERE m.userid = ? AND c.idnumber LIKE 'audience:%'", uid)
    assert open_codes(sandbox, uid) == set()
    assert sandbox.state.get_user(uid)["suspended"] == 1
    assert {c for c in before} == {c["idnumber"] for c in sandbox.state.rows(
        "SELECT c.idnumber FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid JOIN course c "
        "ON c.id = e.courseid WHERE ue.userid = ?", uid)}


def test_a_role_without_the_new_capability_is_a_clear_run_error(
        tmp_path: Path, runner: CliRunner, sandbox: Any, sqlite_url: str) -> None:
    # The docs' role, less enrol/self:config (as an administrator who skipped the new row of the table).
    from creditbridge.connector.functions import REQUIRED_CAPABILITIES

    caps = [c for c in REQUIRED_CAPABILITIES if c != "enrol/self:config"]
    sandbox.state.setup_role_user("creditbridge", caps, token="role-token-0123456789")
    sandbox.token = "role-token-0123456789"
    env = make_env(tmp_path, sandbox, sqlite_url)
    out = env.sync(runner, "catalog", SAMPLES / "catalog.csv", expect=1)
    assert out["errors"], out
    text = " ".join(e["reason"] for e in out["errors"])
    assert "enrol/self:config" in text and "Configure self enrol instances" in text, text


def test_a_site_without_the_plugin_function_stops_the_run_saying_what_to_install(
        env: Env, runner: CliRunner, sandbox: Any) -> None:
    sandbox.state.set_in_service("local_creditbridge_configure_enrolment", False)
    out = env.sync(runner, "catalog", SAMPLES / "catalog.csv", expect=1)
    text = " ".join(e["reason"] for e in out["errors"])
    assert "local_creditbridge 1.2" in text and 'electives = "manual"' in text, text
    # Once the administrator adds it, the next run finishes the job.
    sandbox.state.set_in_service("local_creditbridge_configure_enrolment", True)
    assert env.sync(runner, "catalog", SAMPLES / "catalog.csv")["errors"] == []
    assert env.sync(runner, "topics", SAMPLES / "topics.csv")["errors"] == []


def test_the_manual_policy_still_enrols_every_elective(
        tmp_path: Path, runner: CliRunner, sandbox: Any, sqlite_url: str) -> None:
    env = make_env(tmp_path, sandbox, sqlite_url, extra='electives = "manual"\n')
    _sync_samples(env, runner)
    uid = stored_teachers(env)[T01].moodle_user_id
    codes = enrolled_codes(client_for(sandbox), uid)
    assert _electives_meant_for_t01() | REQUIRED <= codes
    assert open_codes(sandbox, uid) == set()
    assert _audiences_in_store(env, T01) == set()


def test_reconcile_finds_the_completion_of_a_self_enrolled_elective(
        env: Env, runner: CliRunner, sandbox: Any) -> None:
    """No webhook reached creditbridge (this sandbox sends none): the poll asks Moodle who is enrolled in each
    managed course, whatever the enrolment method, so the elective the teacher chose is found."""
    _sync_samples(env, runner)
    uid = stored_teachers(env)[T01].moodle_user_id
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    _enrol_me(runner, sandbox, uid, ids["SD22-E-PBL-03"])
    sandbox.state.set_completion_criteria(ids["SD22-E-PBL-03"], self_completion=True)
    done = runner.invoke(cli, ["sandbox", "complete", "--url", sandbox.url, "--token", sandbox.token,
                               "--userid", str(uid), "--courseid", str(ids["SD22-E-PBL-03"])], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    out = json.loads(env.run(runner, "intake", "reconcile", "--json").stdout)
    assert out["created"] == 1, out
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            rows = s.scalars(select(LearningRecordRow).where(LearningRecordRow.teacher == T01)).all()
            assert [(r.course, r.kind, r.origin) for r in rows] == [("SD22-E-PBL-03", "course", "reconcile")]
    finally:
        store.dispose()


RULE_FILES = sorted(p.stem for p in (Path(__file__).parents[2] / "programmes" / "rules").glob("*.yaml"))


@pytest.mark.parametrize("programme", RULE_FILES)
def test_every_programme_syncs_with_the_self_policy(
        programme: str, tmp_path: Path, runner: CliRunner, sandbox: Any, sqlite_url: str) -> None:
    from creditbridge.quickstart.province import write_province

    files = write_province(tmp_path / "province", teachers=12, seed=3, programme=programme)
    env = make_env(tmp_path, sandbox, sqlite_url, batch_size=50, extra=f'programme = "{programme}"\n')
    for kind, path in (("catalog", files.catalog), ("topics", files.topics), ("roster", files.roster)):
        out = env.sync(runner, kind, path)
        assert out["errors"] == [], (kind, out["errors"][:3])
    for t in stored_teachers(env).values():
        if t.moodle_user_id is not None and t.status == "active":
            assert _manual_enrolments(sandbox, t.moodle_user_id) <= 8
    assert admin_get(sandbox, "welcome_messages")["messages"] == []
    assert env.sync(runner, "roster", files.roster)["lms_calls"] == 0


def test_audience_cohorts_of_long_topic_names_stay_apart_within_moodles_100_characters() -> None:
    """Two topics that differ only past Moodle's 100-character cohort idnumber get two cohorts, not one."""
    stem = "信息技术应用能力提升工程2.0整校推进" * 4
    a = audience_idnumber("sd-2022", stem + "（小学）", "小学", "数学")
    b = audience_idnumber("sd-2022", stem + "（初中）", "小学", "数学")
    assert len(a) == len(b) == 100 and a != b
    assert a.startswith("audience:sd-2022/") and b.startswith("audience:sd-2022/")  # found by the programme's prefix
    assert audience_idnumber("sd-2022", stem + "（小学）", "小学", "数学") == a  # the same key every run
    short = audience_idnumber("sd-2022", "T01", None, "数学")
    assert short == "audience:sd-2022/T01/*/数学"  # what fits is kept as it reads


def test_a_new_student_role_reaches_the_electives_self_enrolment(env: Env, runner: CliRunner, sandbox: Any,
                                                                  tmp_path: Path, sqlite_url: str) -> None:
    """Hostile review: `[sync] student_role_id` changed (the site's learners have their own role) makes sync check
    every course again (it is in the enrolment fingerprint), but each course's remembered configuration named
    only the course and its cohort, so the electives' self enrolment kept giving the old role."""
    _sync_samples(env, runner)
    (tmp_path / "role4").mkdir()
    changed = make_env(tmp_path / "role4", sandbox, sqlite_url, extra="student_role_id = 4\n")
    _sync_samples(changed, runner)
    roles = {r["roleid"] for r in sandbox.state.rows("SELECT roleid FROM enrol WHERE name = 'creditbridge'")}
    assert roles == {4}
    assert changed.sync(runner, "roster", SAMPLES / "roster.csv")["lms_calls"] == 0


def _configured_courses(fields: dict[str, str]) -> list[int]:
    """The courseid of every course of a configure_enrolment call's form fields, in order."""
    found = sorted((int(m.group(1)), int(v)) for k, v in fields.items()
                   if (m := re.fullmatch(r"courses\[(\d+)\]\[courseid\]", k)))
    return [courseid for _, courseid in found]


def test_a_welcome_message_an_admin_turned_back_on_mails_no_new_teacher(env: Env, runner: CliRunner, sandbox: Any,
                                                                        tmp_path: Path) -> None:
    """Hostile review: an administrator turns a managed course's welcome message back on (Enrolment methods >
    Manual enrolments > Send course welcome message). Sync remembered the course as configured and never looked
    again, so every teacher enrolled in it from then on was mailed (the issue's target: no welcome mail for
    managed enrolments). Now a run about to enrol anyone reads once which managed courses send one, and
    configures those (and only those) again before its first enrolment."""
    for kind in ("catalog", "topics"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    assert env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", people(2)))["errors"] == []
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    manual = sandbox.state.manual_instance(ids["SD22-ETH-01"])
    sandbox.state.update("enrol", manual["id"], {"customint1": 1})
    configured: list[list[int]] = []

    def configure(fields: dict[str, str], forward: Any) -> str:
        configured.append(_configured_courses(fields))
        return str(forward())

    r2 = write_roster(tmp_path / "r2.csv", people(3))
    with recorded_site(sandbox.url, {CONFIGURE_ENROLMENT_FUNCTION: configure}) as site:
        out = env.sync(runner, "roster", r2)
    assert out["errors"] == [] and out["created"] == 1
    assert admin_get(sandbox, "welcome_messages")["messages"] == []
    assert sandbox.state.manual_instance(ids["SD22-ETH-01"])["customint1"] == 0
    # One read, then the one course found sending configured again, before the first enrolment.
    assert site.calls.count(WELCOME_COURSES_FUNCTION) == 1
    assert configured == [[ids["SD22-ETH-01"]]]
    assert site.calls.index(CONFIGURE_ENROLMENT_FUNCTION) < site.calls.index("enrol_manual_enrol_users")
    assert site.calls.index(WELCOME_COURSES_FUNCTION) < site.calls.index(CONFIGURE_ENROLMENT_FUNCTION)
    assert [n for n in out["notes"] if "welcome message again" in n and "SD22-ETH-01" in n], out["notes"]

    # Nothing to enrol: no read, no write.
    with recorded_site(sandbox.url, {}) as site:
        again = env.sync(runner, "roster", r2)
    assert again["lms_calls"] == 0 and again["errors"] == []
    assert WELCOME_COURSES_FUNCTION not in site.calls and CONFIGURE_ENROLMENT_FUNCTION not in site.calls


def test_a_welcome_message_that_cannot_be_turned_off_again_holds_back_enrolments_there(
        env: Env, runner: CliRunner, sandbox: Any, tmp_path: Path) -> None:
    """Hostile review: the read finds a course sending a welcome message again, but Moodle refuses to turn it off
    (configure_enrolment refuses that course). The run enrolled teachers there anyway, and each was mailed. Now
    that course's enrolments are held back (an error per teacher, the next run tries again); the others go on."""
    for kind in ("catalog", "topics"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    assert env.sync(runner, "roster", write_roster(tmp_path / "r1.csv", people(2)))["errors"] == []
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    manual = sandbox.state.manual_instance(ids["SD22-ETH-01"])
    sandbox.state.update("enrol", manual["id"], {"customint1": 1})

    def refuse(fields: dict[str, str], forward: Any) -> str:
        return json.dumps({"exception": "dml_missing_record_exception", "errorcode": "invalidrecord",
                           "message": "Can't find data record in database table enrol."})

    r2 = write_roster(tmp_path / "r2.csv", people(3))
    with recorded_site(sandbox.url, {CONFIGURE_ENROLMENT_FUNCTION: refuse}):
        out = env.sync(runner, "roster", r2)
    assert admin_get(sandbox, "welcome_messages")["messages"] == []
    reasons = [e["reason"] for e in out["errors"]]
    assert any(r.startswith("course SD22-ETH-01: could not configure") for r in reasons), reasons
    assert any("could not enrol the teacher in SD22-ETH-01: its course welcome message is on" in r
               for r in reasons), reasons
    # The course is mended and the teacher enrolled by the next run, still without a mail.
    again = env.sync(runner, "roster", r2)
    assert again["errors"] == [], again["errors"]
    assert sandbox.state.manual_instance(ids["SD22-ETH-01"])["customint1"] == 0
    assert admin_get(sandbox, "welcome_messages")["messages"] == []


def test_a_token_that_may_not_read_the_welcome_messages_is_a_note_and_the_run_goes_on(
        tmp_path: Path, runner: CliRunner, sandbox: Any, sqlite_url: str) -> None:
    """The docs' role without moodle/course:enrolreview: the read is refused, the run says so once in its notes
    (not an error) and enrols as before."""
    from creditbridge.connector.functions import REQUIRED_CAPABILITIES

    caps = [c for c in REQUIRED_CAPABILITIES if c != "moodle/course:enrolreview"]
    sandbox.state.setup_role_user("creditbridge", caps, token="role-token-0123456789")
    sandbox.token = "role-token-0123456789"
    env = make_env(tmp_path, sandbox, sqlite_url)
    out = _sync_samples(env, runner)
    assert out["errors"] == [] and out["created"] == 11
    refused = [n for n in out["notes"] if WELCOME_COURSES_FUNCTION in n]
    assert len(refused) == 1, out["notes"]
    assert "moodle/course:enrolreview" in refused[0] and "Review course enrolments" in refused[0]
    uid = stored_teachers(env)[T01].moodle_user_id
    assert REQUIRED <= enrolled_codes(client_for(sandbox), uid)


def test_a_plugin_without_the_welcome_read_is_a_note_naming_the_version(env: Env, runner: CliRunner,
                                                                          sandbox: Any) -> None:
    """local_creditbridge 1.2.1 (no get_courses_sending_welcome) or the function not added to the service."""
    sandbox.state.set_in_service(WELCOME_COURSES_FUNCTION, False)
    out = _sync_samples(env, runner)
    assert out["errors"] == [] and out["created"] == 11
    [note] = [n for n in out["notes"] if WELCOME_COURSES_FUNCTION in n]
    assert "not in the token's service" in note and str(WELCOME_COURSES_SINCE) in note
