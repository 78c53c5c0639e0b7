"""Hostile review: an administrator deletes an audience cohort in Moodle (Site administration > Cohorts >
Delete). Moodle drops its members; the electives' self instances still name it, so nobody can enrol in them
any more. The store still held the deleted cohort's id and its members as done, so an unchanged re-sync sent
nothing and the electives stayed shut for good. Now each roster run asks Moodle which audience cohorts it
still has (reads only) and makes a deleted one again (sync/electives.py forget_deleted_audiences)."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlalchemy import select
from sync_helpers import SAMPLES, Env, codes_by_id, open_codes

from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.sync import electives

T01 = "370102198602110011"


def _moodle_user_id(env: Env, id_number: str) -> int:
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            return int(s.scalar(select(Teacher.moodle_user_id).where(Teacher.id_number == id_number)) or 0)
    finally:
        store.dispose()


def test_electives_open_again_after_an_admin_deleted_their_audience_cohort(env: Env, runner: CliRunner,
                                                                           sandbox: Any) -> None:
    for kind in ("catalog", "topics", "roster"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    uid = _moodle_user_id(env, T01)
    before = open_codes(sandbox, uid)
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    cohortid = sandbox.state.scalar("SELECT MAX(customint5) FROM enrol WHERE enrol = 'self' AND courseid = ?",
                                    ids["SD22-E-STEAM-02"])
    assert cohortid and "SD22-E-STEAM-02" in before
    # What Moodle's cohort_delete_cohort does to the tables the sandbox has: the cohort and its members go.
    sandbox.state.db.execute("DELETE FROM cohort_members WHERE cohortid = ?", (cohortid,))
    sandbox.state.db.execute("DELETE FROM cohort WHERE id = ?", (cohortid,))
    assert "SD22-E-STEAM-02" not in open_codes(sandbox, uid)  # the elective is shut for the teacher
    for kind in ("catalog", "topics", "roster"):
        out = env.sync(runner, kind, SAMPLES / f"{kind}.csv")
        assert out["errors"] == []
    assert open_codes(sandbox, uid) == before
    # and once made again, an unchanged re-sync writes nothing
    assert env.sync(runner, "roster", SAMPLES / "roster.csv")["lms_calls"] == 0


def test_audience_cohorts_past_the_first_search_page_are_not_taken_for_deleted(
        env: Env, runner: CliRunner, sandbox: Any, monkeypatch: Any) -> None:
    """Moodle's core_cohort_search_cohorts reads `limitfrom` as a page number (cohort_get_all_cohorts offsets
    by limitfrom * limitnum), not as a row offset. Paged by row offset, the audiences past the first page were
    skipped on a site with more audiences than a page, taken for deleted, and every run forgot and filled
    them again: an unchanged re-sync wrote again. A page of 2 makes the sample's 11 audiences span pages."""
    monkeypatch.setattr(electives, "SEARCH_PAGE", 2)
    for kind in ("catalog", "topics", "roster"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    out = env.sync(runner, "roster", SAMPLES / "roster.csv")
    assert out["lms_calls"] == 0


def test_an_elective_opens_again_after_an_admin_deleted_or_disabled_its_self_enrolment(
        env: Env, runner: CliRunner, sandbox: Any) -> None:
    """Hostile review: an administrator deletes creditbridge's self enrolment of one elective and disables it in
    another (Course > Participants > Enrolment methods). The store still remembered both courses as configured,
    so every later run skipped them and the electives stayed shut for good. Each roster run now reads the
    electives' enrolment methods (reads only) and configures again the ones whose instance is gone."""
    for kind in ("catalog", "topics", "roster"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    uid = _moodle_user_id(env, T01)
    before = open_codes(sandbox, uid)
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    deleted, disabled = sorted(before)[:2]
    sandbox.state.db.execute("DELETE FROM enrol WHERE courseid = ? AND name = 'creditbridge'", (ids[deleted],))
    sandbox.state.db.execute("UPDATE enrol SET status = 1 WHERE courseid = ? AND name = 'creditbridge'",
                             (ids[disabled],))
    assert open_codes(sandbox, uid) == before - {deleted, disabled}
    out = env.sync(runner, "roster", SAMPLES / "roster.csv")
    assert out["errors"] == [] and out["lms_calls"] == 1  # one configure_enrolment call for the two courses
    assert open_codes(sandbox, uid) == before
    assert env.sync(runner, "roster", SAMPLES / "roster.csv")["lms_calls"] == 0


def test_an_elective_course_deleted_in_moodle_does_not_stop_the_roster_run(env: Env, runner: CliRunner,
                                                                           sandbox: Any) -> None:
    """The check of the electives' self instances reads each course: a course an administrator deleted is a
    run error naming it, and the rest of the run goes on (the catalog sync is where a course is made again)."""
    for kind in ("catalog", "topics", "roster"):
        assert env.sync(runner, kind, SAMPLES / f"{kind}.csv")["errors"] == []
    ids = {code: cid for cid, code in codes_by_id(sandbox).items()}
    sandbox.state.db.execute("DELETE FROM enrol WHERE courseid = ?", (ids["SD22-E-STEAM-02"],))
    sandbox.state.db.execute("DELETE FROM course WHERE id = ?", (ids["SD22-E-STEAM-02"],))
    out = env.sync(runner, "roster", SAMPLES / "roster.csv")
    assert [e["reason"] for e in out["errors"]] and all("SD22-E-STEAM-02" in e["reason"] for e in out["errors"])
