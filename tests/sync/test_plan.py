"""The plan: pure state transitions, full vs delta, the mass-suspension guard, duplicates, catalog and topics
plans, and loading what the store knows."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from creditbridge.programmes import ProgrammeFacts, programme_facts
from creditbridge.quickstart.province import write_changed_roster, write_province
from creditbridge.readers.exports import read_roster
from creditbridge.records.id_number import check_digit
from creditbridge.sync.plan import (
    KnownTeachers,
    TopicsRefused,
    classify,
    hold_suspensions,
    load_known_teachers,
    plan_catalog,
    plan_roster,
    plan_roster_file,
    plan_topics,
)
from creditbridge.sync.records import ActionKind, CatalogRow, InvalidRow, RosterRow, RowError, TeacherState, TopicRow
from creditbridge.sync.validation import ValidatedRoster


def ident(n: int) -> str:
    first17 = f"370102198501{n // 1000 % 28 + 1:02d}{n % 1000:03d}"
    return first17 + check_digit(first17)


def row(n: int, line: int | None = None, **changes: object) -> RosterRow:
    r = RosterRow(line or n + 2, ident(n), f"教师{n}", "S1", "一中", "历下区", "济南市", "middle", "maths", False,
                  "active")
    return r._replace(**changes) if changes else r


def state(r: RosterRow, **changes: object) -> TeacherState:
    s = TeacherState(r.row_hash, r.school_code, r.county, r.city, "active")
    return s._replace(**changes) if changes else s


def as_known(states: dict[str, TeacherState], compact: bool) -> Mapping[str, TeacherState]:
    return KnownTeachers.from_states(states) if compact else states


# --- pure transitions ----------------------------------------------------------------------------------------

TRANSITIONS = [
    # (name, roster row, stored state, expected kind, expected levels)
    ("new teacher", row(1), None, ActionKind.CREATE, ()),
    ("new leaver", row(1, status="left"), None, ActionKind.UNCHANGED, ()),
    ("same", row(1), state(row(1)), ActionKind.UNCHANGED, ()),
    ("phone edited", row(1, phone="139"), state(row(1)), ActionKind.UPDATE, ()),
    ("rural flag", row(1, rural=True), state(row(1)), ActionKind.UPDATE, ()),
    ("other school", row(1, school_code="S2", school_name="二中"), state(row(1)), ActionKind.TRANSFER, ("school",)),
    ("other county", row(1, school_code="S9", county="历城区"), state(row(1)), ActionKind.TRANSFER,
     ("school", "county")),
    ("other city", row(1, school_code="Q1", county="市南区", city="青岛市"), state(row(1)), ActionKind.TRANSFER,
     ("school", "county", "city")),
    ("same-named county in another city", row(1, school_code="Z1", city="枣庄市"), state(row(1)),
     ActionKind.TRANSFER, ("school", "county", "city")),
    ("left", row(1, status="left"), state(row(1)), ActionKind.SUSPEND, ()),
    ("back", row(1), state(row(1), status="suspended"), ActionKind.REACTIVATE, ()),
    ("back elsewhere", row(1, school_code="S2"), state(row(1), status="suspended"), ActionKind.REACTIVATE,
     ("school",)),
    ("still left", row(1, status="left"), state(row(1, status="left"), status="suspended"), ActionKind.UNCHANGED, ()),
    ("left, edited", row(1, status="left", phone="1"), state(row(1, status="left"), status="suspended"),
     ActionKind.UPDATE, ()),
]


@pytest.mark.parametrize(("name", "r", "prev", "kind", "levels"), TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_classify(name: str, r: RosterRow, prev: TeacherState | None, kind: ActionKind,
                  levels: tuple[str, ...]) -> None:
    assert classify(r, prev) == (kind, levels)


@pytest.mark.parametrize("compact", [True, False], ids=["KnownTeachers", "dict"])
@pytest.mark.parametrize(("name", "r", "prev", "kind", "levels"), TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_plan_classifies_each_kind(name: str, r: RosterRow, prev: TeacherState | None, kind: ActionKind,
                                   levels: tuple[str, ...], compact: bool) -> None:
    known = as_known({r.id_number: prev} if prev else {}, compact)
    # force: one teacher of one is over any share; the guard has its own tests below
    plan = plan_roster([r], known, programme="sd-2022", delta=True, force=True)
    assert plan.counts[kind.value] == 1
    assert sum(plan.counts.values()) == 1
    actions = list(plan.actions)
    if kind is ActionKind.UNCHANGED:
        assert actions == []
    else:
        (a,) = actions
        assert (a.kind, a.transfer_levels, a.roster_row, a.previous) == (kind, levels, r, prev)
        assert a.row_hash == r.row_hash
    if kind is ActionKind.TRANSFER:
        assert plan.transfers_by_level[levels[-1]] == 1
        assert actions[0].transfer_level == levels[-1]


def test_hold_suspensions_rule() -> None:
    assert hold_suspensions(11, 100, threshold=0.10, force=False)
    assert not hold_suspensions(10, 100, threshold=0.10, force=False)  # "more than" the share
    assert not hold_suspensions(11, 100, threshold=0.10, force=True)
    assert not hold_suspensions(3, 0, threshold=0.10, force=False)


@pytest.mark.parametrize("compact", [True, False])
def test_a_delta_marking_everyone_as_leaver_is_held_too(compact: bool) -> None:
    known = as_known(_province(30), compact)
    leavers = [row(i, status="left") for i in range(30)]
    plan = plan_roster(leavers, known, programme="sd-2022", delta=True)
    assert plan.held == 30 and plan.counts["suspend"] == 0 and list(plan.actions) == []
    small = plan_roster(leavers[:3], known, programme="sd-2022", delta=True)  # 10%: not more than the share
    assert small.held == 0 and small.counts["suspend"] == 3
    forced = plan_roster(leavers, known, programme="sd-2022", delta=True, force=True)
    assert forced.held == 0 and forced.counts["suspend"] == 30 and len(list(forced.actions)) == 30


# --- full vs delta, the guard ----------------------------------------------------------------------------------

def _province(n: int) -> dict[str, TeacherState]:
    return {row(i).id_number: state(row(i)) for i in range(n)}


@pytest.mark.parametrize("compact", [True, False])
def test_full_export_suspends_the_absent_and_delta_leaves_them(compact: bool) -> None:
    known = as_known(_province(20), compact)
    rows = [row(i) for i in range(19)]  # teacher 19 is missing: 1 of 20 = 5% (under 10%)
    full = plan_roster(rows, known, programme="sd-2022")
    assert full.counts["suspend"] == 1 and full.held == 0 and full.counts["unchanged"] == 19
    (a,) = list(full.actions)
    assert (a.kind, a.id_number, a.roster_row) == (ActionKind.SUSPEND, ident(19), None)
    assert a.previous == known[ident(19)]
    delta = plan_roster(rows, known, programme="sd-2022", delta=True)
    assert delta.counts["suspend"] == 0 and list(delta.actions) == []


@pytest.mark.parametrize("compact", [True, False])
def test_a_truncated_export_holds_suspensions_until_forced(compact: bool) -> None:
    known = as_known(_province(20), compact)
    rows = [row(i) for i in range(15)] + [row(15, status="left"), row(30)]  # 4 absent + 1 leaver = 25%
    plan = plan_roster(rows, known, programme="sd-2022")
    assert plan.held == 5 and plan.counts["suspend"] == 0
    assert plan.counts["create"] == 1  # creates and updates still apply
    assert [a.kind for a in plan.actions] == [ActionKind.CREATE]
    assert plan.as_json()["held"] == 5
    forced = plan_roster(rows, known, programme="sd-2022", force=True)
    assert forced.held == 0 and forced.counts["suspend"] == 5
    kinds = [a.kind for a in forced.actions]
    assert kinds.count(ActionKind.SUSPEND) == 5 and kinds.count(ActionKind.CREATE) == 1
    # a share set higher lets it through
    assert plan_roster(rows, known, programme="sd-2022", suspend_threshold=0.5).held == 0


def test_already_suspended_teachers_do_not_count_or_get_suspended_again() -> None:
    states = _province(10)
    states[ident(9)] = states[ident(9)]._replace(status="suspended")
    plan = plan_roster([row(i) for i in range(8)], KnownTeachers.from_states(states), programme="sd-2022",
                       suspend_threshold=0.2)
    assert plan.known_active == 9
    assert plan.counts["suspend"] == 1 and plan.held == 0
    assert [a.id_number for a in plan.actions] == [ident(8)]
    # 1 of 9 active is over 10%: held by default
    assert plan_roster([row(i) for i in range(8)], KnownTeachers.from_states(states), programme="sd-2022").held == 1


@pytest.mark.parametrize("compact", [True, False])
def test_duplicates_are_rejected_and_not_planned_nor_suspended(compact: bool) -> None:
    known = as_known(_province(5), compact)
    rows: list[RosterRow | InvalidRow] = [row(0), row(1, line=3), row(1, line=4, school_code="S9"), row(2),
                                          row(3), row(4), row(1, line=8),
                                          row(7, line=9), row(7, line=10),
                                          InvalidRow(11, [RowError(row=11, column="学段", reason="unknown stage")],
                                                     ident(7))]
    plan = plan_roster(rows, known, programme="sd-2022", id_column="身份证号")
    assert plan.counts == {"create": 0, "update": 0, "transfer": 0, "suspend": 0, "reactivate": 0, "unchanged": 4}
    assert list(plan.actions) == []
    dup = [(e.row, e.column) for e in plan.errors if "rows" in e.reason]
    assert dup == [(3, "身份证号"), (4, "身份证号"), (8, "身份证号"), (9, "身份证号"), (10, "身份证号"),
                   (11, "身份证号")]
    assert [e.row for e in plan.errors] == sorted(e.row for e in plan.errors)
    assert any("rows 3, 4, 8" in e.reason for e in plan.errors)
    assert any("rows 9, 10, 11" in e.reason for e in plan.errors)
    assert all(ident(1) not in e.reason for e in plan.errors)


def test_actions_replay_the_file_when_too_many_to_hold(tmp_path: Path) -> None:
    files = write_province(tmp_path, teachers=300, seed=2)
    known: dict[str, TeacherState] = {}
    table = read_roster(files.roster)
    held = plan_roster(ValidatedRoster(table), known, programme="sd-2022")
    replayed = plan_roster(ValidatedRoster(table), known, programme="sd-2022", cache_limit=10)
    assert held.counts == replayed.counts
    assert held._cached is not None and replayed._cached is None
    a, b = list(held.actions), list(replayed.actions)
    assert a == b and len(a) == held.action_count == 300 - files.leavers
    assert list(replayed.actions) == b  # re-iterable


def test_province_round_trip_first_sync_then_one_percent_changed(tmp_path: Path) -> None:
    files = write_province(tmp_path, teachers=3000, seed=1)
    plan = plan_roster_file(files.roster, KnownTeachers(), programme="sd-2022")
    assert plan.errors == []
    assert plan.counts["create"] == 3000 - files.leavers
    # What apply stores once Moodle has the accounts.
    known = KnownTeachers()
    for a in plan.actions:
        r = a.roster_row
        assert r is not None
        known.add(r.id_number, a.row_hash, r.school_code, r.county, r.city, "active")
    again = plan_roster_file(files.roster, known, programme="sd-2022")
    assert again.action_count == 0 and list(again.actions) == []
    changed = tmp_path / "changed.csv"
    summary = write_changed_roster(files.roster, changed, share=0.05, seed=3)
    assert summary.changed > 50
    resync = plan_roster_file(changed, known, programme="sd-2022")
    assert resync.action_count == summary.changed
    assert resync.counts["suspend"] == summary.leavers
    assert resync.counts["update"] == summary.edits
    assert resync.counts["transfer"] == sum(summary.transfers.values())
    assert resync.transfers_by_level == summary.transfers


# --- catalog and topics ----------------------------------------------------------------------------------------

def course(code: str, hours: str = "2", **kw: object) -> CatalogRow:
    return CatalogRow(row=2, code=code, title=f"课程{code}", kind="elective", topic="steam", hours=Decimal(hours),
                      **kw)


def test_catalog_plan() -> None:
    known = {"A": course("A").row_hash, "B": course("B").row_hash, "GONE": "x"}
    plan = plan_catalog([course("A"), course("B", hours="3"), course("C")], known)
    assert plan.counts == {"create": 1, "update": 1, "unchanged": 1}
    assert [(a.kind, a.course.code) for a in plan.actions] == [(ActionKind.UPDATE, "B"), (ActionKind.CREATE, "C")]
    assert plan.missing == ["GONE"]
    assert course("A", hours="2.0").row_hash == course("A").row_hash  # 2 and 2.0 hours are the same course


LIMITS = ProgrammeFacts("sd-2022", "rules", "sd-2022", "sd-2022", max_topics=6, mandatory_topics=("ethics",),
                        free_topics=("subject",), lesson_cases=3, lesson_case_match=("stage", "subject"))


def topics(*pairs: tuple[str, str]) -> list[TopicRow]:
    return [TopicRow(row=i + 2, school_code=s, topic=t) for i, (s, t) in enumerate(pairs)]


def test_topics_plan_adds_and_removes_against_the_store() -> None:
    rows = topics(("S1", "ethics"), ("S1", "steam"), ("S1", "subject"), ("S2", "ethics"))
    plan = plan_topics(rows, {"S1": {"ethics", "pbl"}, "S3": {"ethics"}}, limits=LIMITS)
    assert plan.schools == {"S1": ("ethics", "steam", "subject"), "S2": ("ethics",)}
    assert plan.added == [("S1", "steam"), ("S1", "subject"), ("S2", "ethics")]
    assert plan.removed == [("S1", "pbl")]  # S3 is not in the file: left alone


def test_topics_over_the_maximum_are_refused_naming_the_school() -> None:
    seven = [("S2", t) for t in ("ethics", "a", "b", "c", "d", "e", "f")]
    rows = topics(("S1", "ethics"), *seven, ("S2", "subject"))
    with pytest.raises(TopicsRefused) as e:
        plan_topics(rows, {}, limits=LIMITS)
    assert e.value.schools == ["S2"]
    assert [(x.row, x.column) for x in e.value.errors] == [(3, "学校代码")]
    assert "school S2 chose 7 topics" in str(e.value) and "at most 6" in str(e.value)
    # six plus the free `subject` topic is fine
    plan_topics(topics(*seven[:6], ("S2", "subject")), {}, limits=LIMITS)


def test_topics_without_the_mandatory_one_are_refused() -> None:
    with pytest.raises(TopicsRefused, match="school S1 must choose the mandatory topic"):
        plan_topics(topics(("S1", "steam"), ("S2", "ethics")), {}, limits=LIMITS)


def test_topic_not_in_catalog_is_a_row_error() -> None:
    plan = plan_topics(topics(("S1", "ethics"), ("S1", "cooking")), {}, limits=LIMITS,
                       known_topics={"ethics", "steam"})
    assert [(e.row, e.column) for e in plan.errors] == [(3, "专题")]
    assert plan.schools == {"S1": ("ethics",)}


def test_programme_limits_from_rules_and_no_fallback() -> None:
    limits = programme_facts("sd-2022")
    assert (limits.max_topics, limits.mandatory_topics, limits.lesson_cases) == (6, ("ethics",), 3)
    assert limits.source == "rules"
    # No rule file: no programme rule at all, never sd-2022's numbers (issue #17).
    unknown = programme_facts("no-such-programme")
    assert unknown.source == "no rule file" and unknown.code == "no-such-programme"
    assert (unknown.max_topics, unknown.mandatory_topics, unknown.lesson_cases) == (None, (), 0)


# --- the store ---------------------------------------------------------------------------------------------------

def test_load_known_teachers_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    from creditbridge.store.models.core import Teacher

    with store.session() as s:
        for i, status in enumerate(["active", "active", "suspended"]):
            r = row(i)
            s.add(Teacher(programme="sd-2022", id_number=r.id_number, name=r.name, school_code=r.school_code,
                          school_name=r.school_name, county=r.county, city=r.city, stage=r.stage, subject=r.subject,
                          rural=r.rural, status=status, row_hash=r.row_hash))
        s.add(Teacher(programme="other", id_number=ident(50), name="x", school_code="S", school_name="s",
                      county="c", city="c", stage="middle", status="active"))
    known = load_known_teachers(store.engine, "sd-2022")
    assert len(known) == 3 and known.active_count == 2
    assert known[ident(0)] == state(row(0))
    assert known[ident(2)].status == "suspended"
    with store.session() as s:
        assert dict(load_known_teachers(s, "sd-2022")) == dict(known)
    plan = plan_roster([row(0), row(1, phone="1"), row(2)], known, programme="sd-2022")
    assert {k: v for k, v in plan.counts.items() if v} == {"unchanged": 1, "update": 1, "reactivate": 1}


def test_resync_of_a_file_with_new_errors_and_duplicates(tmp_path: Path) -> None:
    import csv

    files = write_province(tmp_path, teachers=700, seed=5)
    first = plan_roster_file(files.roster, KnownTeachers(), programme="sd-2022")
    known = KnownTeachers()
    for a in first.actions:
        r = a.roster_row
        assert r is not None
        known.add(r.id_number, a.row_hash, r.school_code, r.county, r.city, "active")
    with open(files.roster, encoding="gb18030", newline="") as f:
        rows = list(csv.reader(f))
    serving = [i for i, r in enumerate(rows) if i and r[9] == "在职"]
    bad, dup, moved = serving[10], serving[20], serving[400]
    rows[bad][6] = "大学"  # now invalid: reported, and the teacher is not suspended as absent
    rows.append(list(rows[dup]))  # the same teacher twice (spreadsheet row len(rows))
    rows[dup][10] = "13900000000"
    rows[moved][2] = "370199999"  # another school of the county: a transfer
    changed = tmp_path / "changed.csv"
    with open(changed, "w", encoding="gb18030", newline="") as f:
        csv.writer(f).writerows(rows)
    plan = plan_roster_file(changed, known, programme="sd-2022")
    assert [(e.row, e.column) for e in plan.errors] == [(bad + 1, "学段"), (dup + 1, "身份证号"),
                                                         (len(rows), "身份证号")]
    assert f"rows {dup + 1}, {len(rows)}" in plan.errors[1].reason
    assert plan.counts["suspend"] == 0
    assert plan.counts["transfer"] == 1 and plan.transfers_by_level["school"] == 1
    assert plan.counts["unchanged"] == len(known) - 3 + files.leavers  # leavers never synced stay unchanged
    assert [(a.kind, a.id_number, a.transfer_levels) for a in plan.actions] == [
        (ActionKind.TRANSFER, rows[moved][0], ("school",))]
