"""Cohorts per school, county and city, and each teacher's membership kept right through transfers.

Cohort idnumbers: `school:<school code>`, `county:<city>/<county>` (county names repeat across
cities), `city:<city>`. The store remembers each cohort's Moodle id (MoodleRef) and each membership
sync made (CohortMember); a transfer is the difference: out of the old cohorts, into the new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import BatchResult
from creditbridge.store.models.sync import CohortMember, MoodleRef
from creditbridge.sync.apply import ApplyContext, chunked, refusal


def cohort_specs(school_code: str, school_name: str, county: str, city: str) -> dict[str, str]:
    """idnumber -> name of the three cohorts a teacher of this school belongs in."""
    return {
        f"school:{school_code}": f"{school_name} ({school_code})"[:254],
        f"county:{city}/{county}": f"{city}{county}"[:254],
        f"city:{city}": city[:254],
    }


@dataclass
class Membership:
    """One teacher's wanted cohorts (idnumbers). `row` is the file row, for errors."""

    teacher: str
    moodle_user_id: int
    wanted: dict[str, str]  # idnumber -> name
    row: int | None = None


def load_refs(ctx: ApplyContext, kind: str) -> None:
    with ctx.store.session() as s:
        for idnumber, moodle_id in s.execute(select(MoodleRef.idnumber, MoodleRef.moodle_id)
                                             .where(MoodleRef.kind == kind)):
            ctx.refs[(kind, idnumber)] = moodle_id


def _record_ref(ctx: ApplyContext, kind: str, pairs: list[tuple[str, int, str]]) -> None:
    if not pairs:
        return
    with ctx.store.session() as s:
        for idnumber, moodle_id, name in pairs:
            existing = s.scalar(select(MoodleRef).where(MoodleRef.kind == kind, MoodleRef.idnumber == idnumber))
            if existing is None:
                s.add(MoodleRef(kind=kind, idnumber=idnumber, moodle_id=moodle_id, name=name))
            else:
                existing.moodle_id, existing.name = moodle_id, name
            ctx.refs[(kind, idnumber)] = moodle_id


def _find_cohort(ctx: ApplyContext, idnumber: str) -> int | None:
    # The search matches parts of names and idnumbers too ("school:1" finds "school:10..."): page on to the exact one.
    for cohort in ctx.client.iter_cohorts(idnumber, perpage=50):
        if cohort.get("idnumber") == idnumber:
            return int(cohort["id"])
    return None


def ensure_cohorts(ctx: ApplyContext, wanted: dict[str, str]) -> None:
    """Create the cohorts not yet known (system context). One a crashed run made is found and adopted."""
    missing = [(idn, name) for idn, name in sorted(wanted.items()) if ("cohort", idn) not in ctx.refs]
    for chunk in chunked(missing, ctx.batch_size):
        items = [{"categorytype": {"type": "system", "value": ""}, "name": name, "idnumber": idn, "visible": 1}
                 for idn, name in chunk]

        def record(result: BatchResult) -> None:
            _record_ref(ctx, "cohort", [(item["idnumber"], int(answer["id"]), item["name"])
                                        for item, answer in result.succeeded])

        result = ctx.send(ctx.client.create_cohorts, items, record)
        adopted: list[tuple[str, int, str]] = []
        for item, error in result.failed:
            found = _find_cohort(ctx, item["idnumber"])
            if found is None:
                ctx.outcome.error(None, "", f"cohort {item['idnumber']}: Moodle refused to create it: {error.message}")
            else:
                adopted.append((item["idnumber"], found, item["name"]))
        _record_ref(ctx, "cohort", adopted)


def sync_memberships(ctx: ApplyContext, members: Sequence[Membership]) -> set[str]:
    """Add and remove memberships so each teacher is in exactly their wanted cohorts.

    Returns the teachers left fully right (those with a refused change stay pending for the next run).
    """
    if not members:
        return set()
    programme = ctx.programme
    wanted_all: dict[str, str] = {}
    for m in members:
        wanted_all.update(m.wanted)
    ensure_cohorts(ctx, wanted_all)
    have: dict[str, set[str]] = {m.teacher: set() for m in members}
    with ctx.store.session() as s:
        for chunk in chunked(list(have), 500):
            for teacher, cohort in s.execute(select(CohortMember.teacher, CohortMember.cohort).where(
                    CohortMember.programme == programme, CohortMember.teacher.in_(chunk))):
                have[teacher].add(cohort)
    failed: set[str] = set()
    adds: list[tuple[Membership, str]] = []
    removes: list[tuple[Membership, str]] = []
    for m in members:
        for idn in sorted(set(m.wanted) - have[m.teacher]):
            if ("cohort", idn) in ctx.refs:
                adds.append((m, idn))
            else:
                failed.add(m.teacher)
        for idn in sorted(have[m.teacher] - set(m.wanted)):
            removes.append((m, idn))

    def apply(pairs: list[tuple[Membership, str]], adding: bool) -> None:
        for chunk in chunked(pairs, ctx.wave_size):  # a wave: one batch per call in flight (ctx.send)
            items: list[dict[str, Any]]
            if adding:
                items = [{"cohorttype": {"type": "id", "value": ctx.refs[("cohort", idn)]},
                          "usertype": {"type": "id", "value": m.moodle_user_id}} for m, idn in chunk]
            else:
                # A cohort sync never knew the id of (should not happen) is simply forgotten.
                items = [{"cohortid": ctx.refs.get(("cohort", idn), 0), "userid": m.moodle_user_id}
                         for m, idn in chunk]
            lookup = {id(item): pair for item, pair in zip(items, chunk, strict=True)}

            def record(result: BatchResult, adding: bool = adding,
                       lookup: dict[int, tuple[Membership, str]] = lookup) -> None:
                done = [lookup[id(item)] for item, _ in result.succeeded]
                with ctx.store.session() as s:
                    for m, idn in done:
                        if adding:
                            s.add(CohortMember(programme=programme, teacher=m.teacher, cohort=idn))
                        else:
                            s.execute(delete(CohortMember).where(
                                CohortMember.programme == programme, CohortMember.teacher == m.teacher,
                                CohortMember.cohort == idn))

            call = ctx.client.add_cohort_members if adding else ctx.client.delete_cohort_members
            result = ctx.send(call, items, record)
            for item, error in result.failed:
                m, idn = lookup[id(item)]
                failed.add(m.teacher)
                verb = "add to" if adding else "remove from"
                ctx.outcome.error(m.row, "", f"could not {verb} cohort {idn}: {_reason(error)}")

    apply(removes, adding=False)
    apply(adds, adding=True)
    return {m.teacher for m in members} - failed


def _reason(error: MoodleError) -> str:
    return refusal(error)
