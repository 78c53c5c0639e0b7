"""Marks of teachers whose inputs changed (credit_mark, written by the triggers of migration 0008): what an
incremental `credits evaluate` reads, and what `credits status` counts (through outbox/status.py).

A mark row is appended by the database wherever a teacher's inputs change, so no write path can forget it.
An evaluation reads marks before the inputs they stand for and deletes exactly the rows it read (never "all
marks up to now"): a mark committed while it runs is evaluated by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, not_, or_, select
from sqlalchemy import delete as sql_delete

from creditbridge.programmes import Programme
from creditbridge.store import Store
from creditbridge.store.keys import in_ids, in_keys, keys_value
from creditbridge.store.models.base import age_seconds, utcnow
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.credits import CreditEvaluationRun, CreditMark

CM = CreditMark.__table__
TE = Teacher.__table__
RUNS = CreditEvaluationRun.__table__
# An incremental run reads the marked teachers by key lists, a full run streams the roster in key order and
# skips unchanged people by their fingerprint. When more than this share of a roster of at least FULL_MIN_ROSTER
# teachers is marked (a bulk import), the full run is the cheaper path and clears the marks as well.
FULL_SHARE = 0.5
FULL_MIN_ROSTER = 1000
_BATCH = 5000


@dataclass
class Found:
    """The marks of one programme as read at the start of an incremental run."""

    teachers: dict[str, list[int]] = field(default_factory=dict)  # teacher -> mark ids
    schools: set[str] = field(default_factory=set)  # schools whose admin result must be recomputed
    whole_schools: set[str] = field(default_factory=set)  # every teacher of these schools (topic change)
    ids: list[int] = field(default_factory=list)
    whole_ids: list[int] = field(default_factory=list)  # the marks without a teacher


def read_all(conn: Connection, code: str) -> Found:
    found = Found()
    # .all(): one fetchall; iterating the result fetches row by row (on psycopg a call and a check per row)
    for i, teacher, school in conn.execute(select(CM.c.id, CM.c.teacher, CM.c.school)
                                           .where(CM.c.programme == code)).all():
        found.ids.append(i)
        if school is not None:
            found.schools.add(school)
        if teacher is not None:
            found.teachers.setdefault(teacher, []).append(i)
        else:
            found.whole_ids.append(i)
            if school is not None:
                found.whole_schools.add(school)
    return found


def read_range(conn: Connection, code: str, lo: str | None, hi: str | None) -> list[tuple[int, str]]:
    """(id, teacher) of the teacher marks with lo < teacher <= hi (None: open)."""
    q = select(CM.c.id, CM.c.teacher).where(CM.c.programme == code, CM.c.teacher.is_not(None))
    if lo is not None:
        q = q.where(CM.c.teacher > lo)
    if hi is not None:
        q = q.where(CM.c.teacher <= hi)
    return [(i, t) for i, t in conn.execute(q).all()]


def read_whole(conn: Connection, code: str) -> list[int]:
    """Ids of the school and programme-wide marks (no teacher)."""
    return list(conn.execute(select(CM.c.id).where(CM.c.programme == code, CM.c.teacher.is_(None))).scalars())


def teachers_of_schools(conn: Connection, code: str, schools: set[str]) -> set[str]:
    if not schools:
        return set()
    d = conn.dialect
    return set(conn.execute(select(TE.c.id_number).where(TE.c.programme == code, in_keys(d, TE.c.school_code)),
                            {"keys": keys_value(d, sorted(schools))}).scalars().all())


def delete(conn: Connection, ids: list[int]) -> None:
    """Delete exactly these mark rows (one statement per _BATCH ids, whatever their number)."""
    d = conn.dialect
    stmt = sql_delete(CreditMark).where(in_ids(d, CM.c.id))
    for at in range(0, len(ids), _BATCH):
        conn.execute(stmt, {"ids": keys_value(d, ids[at:at + _BATCH])})


def _complete_run_of(programme: Any) -> Any:
    """A finished run over everyone of `programme` (what makes the next evaluation of it incremental)."""
    return exists().where(RUNS.c.programme == programme, RUNS.c.finished_at.is_not(None),
                          or_(RUNS.c.mode.is_(None), RUNS.c.mode == "all"))


def dispose_unneeded(conn: Connection) -> dict[str, int]:
    """Delete the marks of every programme that never had a complete evaluation, and say how many per programme.

    Such marks stand for nothing: the first evaluation of a programme evaluates everyone (`full_reason`), so no
    run would ever read them, and they piled up (records of a programme without a rule file, a programme not
    on the roster yet). Exactly the rows counted are deleted (ids up to the largest seen), so a count and a
    deletion never disagree."""
    found = conn.execute(select(CM.c.programme, func.count(), func.max(CM.c.id))
                         .where(not_(_complete_run_of(CM.c.programme)))
                         .group_by(CM.c.programme).order_by(CM.c.programme)).all()
    for code, _n, top in found:
        conn.execute(sql_delete(CreditMark).where(and_(CM.c.programme == code, CM.c.id <= top)))
    return {code: n for code, n, _top in found}


def full_reason(store: Store, prog: Programme, evaluator_version: str) -> str | None:
    """Why an incremental run of this programme must evaluate everyone, or None when the marks suffice."""
    code = prog.id
    with store.engine.connect() as conn:
        last = conn.execute(select(RUNS.c.rule_hash, RUNS.c.evaluator_version).where(
            RUNS.c.programme == code, RUNS.c.finished_at.is_not(None),
            (RUNS.c.mode.is_(None)) | (RUNS.c.mode == "all")).order_by(RUNS.c.id.desc()).limit(1)).first()
        if last is None:
            return f"no complete evaluation of {code} yet"
        if last.rule_hash != prog.hash:
            return f"rule file changed since the last complete run (hash {last.rule_hash[:12]} → {prog.hash[:12]})"
        if last.evaluator_version != evaluator_version:
            return f"evaluator version changed ({last.evaluator_version or 'none'} → {evaluator_version})"
        if conn.execute(select(CM.c.id).where(CM.c.programme == code, CM.c.teacher.is_(None),
                                              CM.c.school.is_(None)).limit(1)).first() is not None:
            return "catalog changed"
        marked = conn.execute(select(func.count(CM.c.teacher.distinct())).where(CM.c.programme == code)).scalar_one()
        if marked < FULL_SHARE * FULL_MIN_ROSTER:
            return None  # too few to be over half of a roster large enough: the roster need not be counted
        # marked > FULL_SHARE * roster only if roster < marked / FULL_SHARE: counting that far is enough, so the
        # cost of this check grows with the change, not with the roster
        bound = int(marked / FULL_SHARE) + 1
        roster = conn.execute(select(func.count()).select_from(
            select(TE.c.id_number).where(TE.c.programme == code).limit(bound).subquery())).scalar_one()
    if roster >= FULL_MIN_ROSTER and marked > FULL_SHARE * roster:
        return f"{marked} of {roster} teachers marked"
    return None


def waiting(store: Store) -> dict[str, Any]:
    """Teachers waiting for evaluation per programme: marked teachers, schools and programme-wide marks, and the
    age of the oldest mark."""
    now = utcnow()
    oldest = func.min(CM.c.created_at).label("oldest")
    with store.engine.connect() as conn:
        per = conn.execute(select(CM.c.programme, func.count(CM.c.teacher.distinct()),
                                  func.count(CM.c.school.distinct()).filter(CM.c.teacher.is_(None)),
                                  func.count().filter(CM.c.teacher.is_(None), CM.c.school.is_(None)),
                                  oldest).group_by(CM.c.programme).order_by(CM.c.programme)).all()
    programmes: dict[str, Any] = {}
    for code, teachers, schools, whole, at in per:
        programmes[code] = {"teachers": teachers, "schools": schools, "whole_programme": bool(whole),
                            "oldest_age_seconds": age_seconds(at, now)}
    ages = [p["oldest_age_seconds"] for p in programmes.values() if p["oldest_age_seconds"] is not None]
    return {"teachers": sum(p["teachers"] for p in programmes.values()),
            "oldest_age_seconds": max(ages) if ages else None, "programmes": programmes}

