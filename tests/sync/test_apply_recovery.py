"""Acceptance: a run cut short (Moodle down mid-way, or the process killed after Moodle took a batch)
leaves the store matching Moodle, and the next `creditbridge sync` finishes without duplicates; a
record Moodle refuses is reported and the rest of its batch applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sync_helpers import (
    SAMPLES,
    Budget,
    Env,
    FailAfter,
    client_for,
    enrolled_codes,
    id_number,
    make_env,
    people,
    sandbox_users,
    write_roster,
)

from creditbridge.i18n import words
from creditbridge.store import open_store
from creditbridge.store.models.core import LessonCaseAssignment, Teacher
from creditbridge.store.models.sync import CohortMember, Enrolment
from creditbridge.sync.moodle_users import username_for
from creditbridge.sync.records import RosterRow
from creditbridge.sync.service import sync_roster

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default


def _state(env: Env) -> tuple[dict[str, Teacher], set[tuple[str, str]], set[tuple[str, str]]]:
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            teachers = {t.id_number: t for t in s.scalars(select(Teacher))}
            enrolments = {(e.teacher, e.course) for e in s.scalars(select(Enrolment))}
            members = {(m.teacher, m.cohort) for m in s.scalars(select(CohortMember))}
        return teachers, enrolments, members
    finally:
        store.dispose()


def _check_store_matches_moodle(env: Env, sandbox: Any) -> None:
    """Everything the store says Moodle has, Moodle has (the reverse may lag by one batch)."""
    client = client_for(sandbox)
    teachers, enrolments, _ = _state(env)
    users = sandbox_users(client, [t.username for t in teachers.values()])
    for t in teachers.values():
        assert users[t.username]["id"] == t.moodle_user_id
    by_teacher: dict[str, set[str]] = {}
    for teacher, course in enrolments:
        by_teacher.setdefault(teacher, set()).add(course)
    for teacher, courses in by_teacher.items():
        assert courses <= enrolled_codes(client, teachers[teacher].moodle_user_id)


# Concurrency 1 sends one call at a time: the write that fails is exactly the one after the `writes` allowed.
# Concurrency 4 keeps up to 4 in flight, sharing one budget of writes: the run stops after the calls in flight.
@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("writes", [1, 3, 11])
def test_outage_mid_apply_then_rerun_finishes_without_duplicates(
        tmp_path: Path, sandbox: Any, runner: CliRunner, sqlite_url: str, writes: int, concurrency: int) -> None:
    assert _outage_then_rerun(tmp_path, sandbox, runner, sqlite_url, writes, concurrency) == (14, 0)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_outage_mid_apply_on_each_store_backend(tmp_path: Path, sandbox: Any, runner: CliRunner,
                                                 db_url: str, concurrency: int) -> None:
    assert _outage_then_rerun(tmp_path, sandbox, runner, db_url, 6, concurrency) == (14, 0)


def _outage_then_rerun(tmp_path: Path, sandbox: Any, runner: CliRunner, db_url: str,
                       writes: int, concurrency: int) -> tuple[int, int]:
    """Cut a roster sync short after `writes` Moodle writes, check the store against Moodle, run it again;
    (teachers in Moodle after the rerun, Moodle calls of one more run) for the test to assert."""
    env = make_env(tmp_path, sandbox, db_url, concurrency=concurrency)
    env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    env.sync(runner, "topics", SAMPLES / "topics.csv")
    roster = write_roster(tmp_path / "roster.csv", [*people(9), *people(5, start=30, stage="小学", subject="语文",
                                                                         school="370102002",
                                                                         school_name="济南市历下区实验小学")])
    store = open_store(env.settings.database.url)
    try:
        budget = Budget(writes)
        cut = sync_roster(env.settings, store, roster,
                          client_factory=lambda s: FailAfter(s.moodle, budget=budget))
    finally:
        store.dispose()
    assert cut.aborted and cut.outcome == "aborted"
    assert writes + 1 <= cut.lms_calls <= writes + concurrency
    assert any("run stopped" in e.reason for e in cut.errors)
    _check_store_matches_moodle(env, sandbox)
    runs = json.loads(env.run(runner, "sync", "runs", "--json").stdout)
    assert runs[0]["run_id"] == cut.run_id and runs[0]["outcome"] == "aborted"

    done = env.sync(runner, "roster", roster)
    assert done["errors"] == []
    teachers, enrolments, members = _state(env)
    assert len(teachers) == 14 and all(t.applied_hash == t.row_hash for t in teachers.values())
    client = client_for(sandbox)
    users = sandbox_users(client, [t.username for t in teachers.values()])
    assert len(users) == 14
    assert len([m for m in members if not m[1].startswith("audience:")]) == 14 * 3
    # and the audiences of the electives meant for them (docs/sync.md "Enrolment policy"): middle maths at
    # 370102001 7 (ethics, 5 topics, subject), primary Chinese at 370102002 3 (ethics, 2 topics)
    assert len([m for m in members if m[1].startswith("audience:")]) == 9 * 7 + 5 * 3
    store = open_store(env.settings.database.url)
    with store.session() as s:
        cases = s.scalars(select(LessonCaseAssignment)).all()
    store.dispose()
    assert len(cases) == 14 * 3 and all(c.enrolled for c in cases)
    for t in teachers.values():
        mine = {c for tt, c in enrolments if tt == t.id_number}
        assert mine == enrolled_codes(client, t.moodle_user_id)
    # Finished: the next run has nothing to send.
    return len(users), env.sync(runner, "roster", roster)["lms_calls"]


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("writes", [0, 4, 20])
def test_killed_after_moodle_took_a_batch_next_run_adopts_instead_of_duplicating(
        tmp_path: Path, sandbox: Any, runner: CliRunner, sqlite_url: str, writes: int, concurrency: int) -> None:
    """Batches of 4: writes 1-2 create users, 3 cohorts, 4-18 memberships (3 cohorts and 7 audiences each),
    19-26 enrolments. Killed after the first user batch (0), a membership batch (4) or an enrolment batch (20)
    reached Moodle (with concurrency 4, after the other batches in flight reached it too)."""
    env = make_env(tmp_path, sandbox, sqlite_url, concurrency=concurrency)
    env.sync(runner, "topics", SAMPLES / "topics.csv")
    env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    roster = write_roster(tmp_path / "roster.csv", people(6))
    store = open_store(env.settings.database.url)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            # A batch reaches Moodle, then the process dies before the store hears of it.
            budget = Budget(writes)
            sync_roster(env.settings, store, roster, client_factory=lambda s: FailAfter(s.moodle, budget=budget,
                                                                                        mode="crash"))
    finally:
        store.dispose()
    _check_store_matches_moodle(env, sandbox)
    names = [username_for(env.settings.sync, RosterRow(0, id_number(i), "x", "s", "s", "c", "c", "middle", None,
                                                       False, "active")) for i in range(1, 7)]
    client = client_for(sandbox)
    if writes == 0:
        assert _state(env)[0] == {}  # the store never heard of them
        # but the first batch of 4 is in Moodle (with concurrency 4, the second batch sent beside it too)
        assert len(sandbox_users(client, names)) == (4 if concurrency == 1 else 6)

    out = env.sync(runner, "roster", roster)
    assert out["errors"] == []
    assert out["created"] == (6 if writes == 0 else 0)
    teachers, enrolments, members = _state(env)
    users = sandbox_users(client, names)
    assert len(users) == 6
    assert {t.moodle_user_id for t in teachers.values()} == {u["id"] for u in users.values()}
    assert all(t.applied_hash == t.row_hash for t in teachers.values())
    assert len(members) == 6 * (3 + 7)
    for t in teachers.values():
        assert {c for tt, c in enrolments if tt == t.id_number} == enrolled_codes(client, t.moodle_user_id)
    assert env.sync(runner, "roster", roster)["lms_calls"] == 0


def test_one_duplicate_email_is_reported_and_the_rest_of_the_batch_applies(
        tmp_path: Path, sandbox: Any, runner: CliRunner, sqlite_url: str) -> None:
    env = make_env(tmp_path, sandbox, sqlite_url, batch_size=10)
    client = client_for(sandbox)
    taken = client.create_users([{"username": "someoneelse", "password": "Teach#2024a", "firstname": "A",
                                  "lastname": "B", "email": "taken@example.org"}])
    assert taken.ok
    staff = people(6)
    staff[3] = staff[3].moved(email="taken@example.org")
    out = env.sync(runner, "roster", write_roster(tmp_path / "roster.csv", staff))
    assert out["created"] == 5
    assert len(out["errors"]) == 1
    error = out["errors"][0]
    assert error["row"] == 5 and error["column"] == "邮箱" and "email" in error["reason"].lower()
    from openpyxl import load_workbook

    plan = {r[1]: r[5] for r in load_workbook(out["report"], read_only=True)[ZH("sync.sheet.plan")]
            .iter_rows(min_row=2, values_only=True)}
    assert plan[5].startswith("refused") and plan[2] == plan[7] == "done"
    teachers, _, _ = _state(env)
    assert set(teachers) == {p.id_number for p in staff} - {staff[3].id_number}
    # The refused teacher is retried (and refused again) without any write call, the rest untouched.
    again = env.sync(runner, "roster", tmp_path / "roster.csv")
    assert again["lms_calls"] == 0 and again["created"] == 0 and len(again["errors"]) == 1
    # Once the export fixes the address the teacher goes through.
    staff[3] = staff[3].moved(email="fixed@example.org")
    fixed = env.sync(runner, "roster", write_roster(tmp_path / "roster2.csv", staff))
    assert fixed["created"] == 1 and fixed["errors"] == []


def test_cohorts_categories_and_courses_already_in_moodle_are_adopted_not_duplicated(
        tmp_path: Path, sandbox: Any, runner: CliRunner, sqlite_url: str) -> None:
    """What a run killed before recording its batch leaves behind (or an admin made by hand) is reused."""
    env = make_env(tmp_path, sandbox, sqlite_url)
    client = client_for(sandbox)
    cohort = client.create_cohorts([{"categorytype": {"type": "system", "value": ""}, "name": "一中",
                                     "idnumber": "school:370102001"}]).succeeded[0][1]["id"]
    top = client.create_categories([{"name": "sd", "idnumber": "sd-2022", "parent": 0}]).succeeded[0][1]["id"]
    course = client.create_courses([{"fullname": "old title", "shortname": "SD22-ETH-01", "idnumber": "SD22-ETH-01",
                                     "categoryid": top}]).succeeded[0][1]["id"]

    catalog = env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    assert catalog["created"] == 57 and catalog["errors"] == []
    found = client.get_courses_by_field("idnumber", "SD22-ETH-01")
    assert [c["id"] for c in found] == [course] and found[0]["fullname"] == "师德师风建设(一)"
    assert [c["id"] for c in client.get_categories({"idnumber": "sd-2022"}, addsubcategories=False)] == [top]

    staff = people(2)
    env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    same = [c for c in client.search_cohorts("school:370102001") if c["idnumber"] == "school:370102001"]
    assert [c["id"] for c in same] == [cohort]
    teachers, _, _ = _state(env)
    members = client.get_cohort_members([cohort])[0]["userids"]
    assert sorted(members) == sorted(t.moodle_user_id for t in teachers.values())
    assert course in {c["id"] for c in client.get_users_courses(teachers[staff[0].id_number].moodle_user_id)}


def test_a_cohort_past_the_first_search_page_is_adopted_not_refused(
        tmp_path: Path, sandbox: Any, runner: CliRunner, sqlite_url: str) -> None:
    """core_cohort_search_cohorts matches parts of idnumbers and names, ordered by name: on a site where many
    cohorts contain a school's code (school:370102001 is in school:3701020010 ... 59), the school's own cohort,
    left by a crashed run, was past the first 50 matches, and the run reported it as refused."""
    env = make_env(tmp_path, sandbox, sqlite_url)
    client = client_for(sandbox)
    system = {"type": "system", "value": ""}
    client.create_cohorts([{"categorytype": system, "name": f"A{n:02d}", "idnumber": f"school:3701020010{n:02d}"}
                           for n in range(60)])
    cohort = client.create_cohorts([{"categorytype": system, "name": "一中",
                                     "idnumber": "school:370102001"}]).succeeded[0][1]["id"]
    for kind in ("catalog", "topics"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    staff = people(2)
    out = env.sync(runner, "roster", write_roster(tmp_path / "r.csv", staff))
    assert out["errors"] == []
    teachers, _, _ = _state(env)
    members = client.get_cohort_members([cohort])[0]["userids"]
    assert sorted(members) == sorted(t.moodle_user_id for t in teachers.values())
