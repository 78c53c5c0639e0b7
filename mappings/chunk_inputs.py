"""What the evaluation of a chunk of teachers reads from the store: the catalog, school topics, roster rows,
learning records, lesson-case assignments, and for marked teachers their stored results.

The store is read in chunks of teachers in ID-number order (keyset pagination, plain Core rows, no ORM object
per record), each chunk's records, assignments and stored results fetched by the same key range or key list,
so memory stays flat however large the roster.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, and_, bindparam, case, literal, null, select
from sqlalchemy.sql.expression import cast, false
from sqlalchemy.types import Text

from creditbridge.mappings.evaluate import Course, Rules
from creditbridge.mappings.writer import CR, EXISTING_COLS, time_to_db
from creditbridge.store.keys import in_keys, keys_value
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher

LR = LearningRecordRow.__table__
TE = Teacher.__table__
LCA = LessonCaseAssignment.__table__


def load_catalog(conn: Connection, code: str) -> dict[str, Course]:
    t = CatalogCourse.__table__
    rows = conn.execute(select(t.c.code, t.c.kind, t.c.topic, t.c.mode, t.c.hours, t.c.stage, t.c.subject, t.c.city)
                        .where(t.c.programme == code))
    return {r.code: Course.of(r.code, r.kind, r.topic, r.mode, r.hours, r.stage, r.subject, r.city) for r in rows}


def load_school_topics(conn: Connection, code: str, schools: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The chosen topics of every school of the programme, or of these schools only (an incremental run reads
    the schools of the teachers it evaluates, not the province's)."""
    t = SchoolTopic.__table__
    q = select(t.c.school_code, t.c.topic).where(t.c.programme == code)
    params: dict[str, Any] = {}
    if schools is not None:
        q = q.where(in_keys(conn.dialect, t.c.school_code))
        params["keys"] = keys_value(conn.dialect, sorted(schools))
    out: dict[str, list[str]] = {}
    for school, topic in conn.execute(q, params).all():
        out.setdefault(school, []).append(topic)
    return out


def key_range(col: Any, lo: str | None, hi: str | None) -> Any:
    parts = []
    if lo is not None:
        parts.append(col > lo)
    if hi is not None:
        parts.append(col <= hi)
    return and_(*parts) if parts else literal(True)


_Shape = tuple[str, tuple[str, ...] | None, dict[str, Any]]


class RecordQuery:
    """The records (and lesson-case assignments) of a key range or of a list of teachers, fetched through the
    DBAPI cursor of the chunk's connection (same transaction): the hot path of a million-teacher run, where
    building a Row per record would cost as much as reading it. The SQL is compiled by SQLAlchemy once per
    shape (range ends present or not, or a key list), for the dialect in use. Both shapes give the same rows,
    so a teacher's fingerprint is the same whether a full or an incremental run reads it."""

    def __init__(self, conn: Connection, programme: str, rules: Rules) -> None:
        self.conn = conn
        dialect = conn.dialect
        to_db = time_to_db(dialect)
        ws, we = rules.window_start, rules.window_end
        self.base = {"p": programme, "rev": "revocation",
                     "ws": to_db(ws) if to_db else ws, "we": to_db(we) if to_db else we}
        # Column order is the evaluator's RecTuple; the window side comes from SQL, so timestamps are never
        # turned into Python objects. Only the codes some role counts are read, ordered by teacher (the
        # (programme, teacher) index gives that order without a sort).
        window = case((LR.c.occurred_at < bindparam("ws"), -1), (LR.c.occurred_at >= bindparam("we"), 1), else_=0)
        cols = (LR.c.teacher, LR.c.course, LR.c.kind, LR.c.passed, cast(LR.c.hours, Float),
                cast(LR.c.minutes, Float), cast(LR.c.score, Float), LR.c.activity, window,
                # a component with a window of its own needs the time (as text: the fingerprint marshals rows)
                cast(LR.c.occurred_at, Text) if rules.component_windows else null())
        # one bound parameter per code (an "expanding" IN would need values at compile time)
        codes = [bindparam(f"code{i}", c, type_=LR.c.course.type) for i, c in enumerate(sorted(rules.codes))]
        live = [LR.c.withdrawn_by.is_(None), LR.c.kind != bindparam("rev")]
        self.compiled = self._compile(dialect, cols, LR, [*live, LR.c.course.in_(codes) if codes else false()])
        self.compiled_lca = self._compile(dialect, (LCA.c.teacher, LCA.c.course), LCA, [])
        # the school-admin tasks of the teachers of some schools (incremental mode: the schools' admin results),
        # each row a RecTuple followed by the teacher's school
        admin = sorted(rules.matches.get("school_admin", {}))
        admin_codes = [bindparam(f"code{i}", c, type_=LR.c.course.type) for i, c in enumerate(admin)]
        q = (select(*cols, TE.c.school_code)
             .join_from(LR, TE, and_(TE.c.programme == LR.c.programme, TE.c.id_number == LR.c.teacher))
             .where(LR.c.programme == bindparam("p"), *live,
                    LR.c.course.in_(admin_codes) if admin_codes else false(),
                    in_keys(dialect, TE.c.school_code))
             .order_by(LR.c.teacher))
        self.compiled_admin = self._shape(dialect, q)

    def _shape(self, dialect: Any, q: Any) -> _Shape:
        c = q.compile(dialect=dialect)
        # construct_params holds the literals SQLAlchemy made binds of (the CASE's -1, 1, 0)
        return str(c), c.positiontup if dialect.positional else None, {**c.construct_params(_check=False), **self.base}

    def _compile(self, dialect: Any, cols: tuple[Any, ...], table: Any, extra: list[Any]) -> dict[Any, _Shape]:
        compiled: dict[Any, _Shape] = {}
        for has_lo in (False, True):
            for has_hi in (False, True):
                conds = [table.c.programme == bindparam("p"), *extra]
                if has_lo:
                    conds.append(table.c.teacher > bindparam("lo"))
                if has_hi:
                    conds.append(table.c.teacher <= bindparam("hi"))
                compiled[(has_lo, has_hi)] = self._shape(dialect, select(*cols).where(*conds)
                                                         .order_by(table.c.teacher))
        conds = [table.c.programme == bindparam("p"), *extra, in_keys(dialect, table.c.teacher)]
        compiled["keys"] = self._shape(dialect, select(*cols).where(*conds).order_by(table.c.teacher))
        return compiled

    def fetch(self, lo: str | None, hi: str | None) -> list[tuple[Any, ...]]:
        """The range's learning records as RecTuples, in teacher order."""
        return self._run(self.compiled[(lo is not None, hi is not None)], {"lo": lo, "hi": hi})

    def assignments(self, lo: str | None, hi: str | None) -> list[tuple[Any, ...]]:
        """The range's lesson-case assignments: (teacher, course)."""
        return self._run(self.compiled_lca[(lo is not None, hi is not None)], {"lo": lo, "hi": hi})

    def fetch_of(self, teachers: list[str]) -> list[tuple[Any, ...]]:
        """The learning records of these teachers as RecTuples, in teacher order."""
        return self._run(self.compiled["keys"], {"keys": keys_value(self.conn.dialect, teachers)})

    def assignments_of(self, teachers: list[str]) -> list[tuple[Any, ...]]:
        return self._run(self.compiled_lca["keys"], {"keys": keys_value(self.conn.dialect, teachers)})

    def admin_records_of(self, schools: list[str]) -> list[tuple[Any, ...]]:
        """The school-admin task records of the roster teachers of these schools: RecTuple + (school,)."""
        return self._run(self.compiled_admin, {"keys": keys_value(self.conn.dialect, schools)})

    def _run(self, shape: _Shape, extra: dict[str, Any]) -> list[tuple[Any, ...]]:
        sql, order, fixed = shape
        params = {**fixed, **extra}
        cur = self.conn.connection.cursor()
        try:
            cur.execute(sql, tuple(params[n] for n in order) if order is not None else params)
            # sqlite3 and psycopg both fetch a list of tuples; the DB-API stub only promises a sequence.
            rows = typing.cast(list[tuple[Any, ...]], cur.fetchall())
        finally:
            cur.close()
        return rows


def people_cols() -> tuple[Any, ...]:
    """The roster columns of a person, in the order `ChunkEvaluator.evaluate` unpacks them."""
    return TE.c.id_number, TE.c.school_code, TE.c.stage, TE.c.subject, TE.c.city


@dataclass
class MarkedInputs:
    """What the evaluation of a chunk of marked teachers reads: roster rows, the topics of schools not read
    before, records, lesson-case assignments and stored results."""

    people: Sequence[Any]
    topics: dict[str, list[str]]
    records: list[tuple[Any, ...]]
    assignments: list[tuple[Any, ...]]
    existing: dict[tuple[str, str], Any]


class MarkedReader:
    """Reads the inputs of chunks of marked teachers, each chunk in one transaction of its connection. Used by
    one thread at a time (the prefetching one on PostgreSQL): it alone keeps which schools' topics it read."""

    def __init__(self, conn: Connection, code: str, rules: Rules, person_roles: Sequence[str]) -> None:
        self.conn, self.code = conn, code
        self.records = RecordQuery(conn, code, rules)
        self.topics_read: set[str] = set()
        d = conn.dialect
        # one statement each for any number of keys (store/keys.py), compiled once
        self.people_q = select(*people_cols()).where(TE.c.programme == code, in_keys(d, TE.c.id_number)
                                                     ).order_by(TE.c.id_number)
        self.existing_q = select(*EXISTING_COLS).where(CR.c.programme == code, CR.c.role.in_(person_roles),
                                                       in_keys(d, CR.c.teacher))

    def read(self, chunk: list[str]) -> MarkedInputs:
        conn, d = self.conn, self.conn.dialect
        with conn.begin():
            people = conn.execute(self.people_q, {"keys": keys_value(d, chunk)}).all()
            # the topics of a school are read when one of its teachers is: the cost grows with the change
            new_schools = {p.school_code for p in people} - self.topics_read
            topics = load_school_topics(conn, self.code, new_schools) if new_schools else {}
            self.topics_read |= new_schools
            recs = self.records.fetch_of(chunk)
            asg = self.records.assignments_of(chunk)
            existing = {(r.teacher, r.role): r for r in conn.execute(self.existing_q,
                                                                     {"keys": keys_value(d, chunk)}).all()}
        return MarkedInputs(people, topics, recs, asg, existing)

