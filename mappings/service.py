"""Evaluating every teacher of a programme in the state store and storing the results.

The store is read in chunks of teachers in ID-number order (keyset pagination, plain Core rows, no
ORM object per record), each chunk's records, lesson-case assignments and stored results fetched by
the same key range, so memory stays flat however large the roster. One transaction per chunk: a
result row is always whole. A stored result is rewritten only when something in it changed; a
change of what a registry push carries (result_hash) is logged with the values before and after. A person
whose inputs' fingerprint (input_hash) equals the stored one is not evaluated again (docs/rules.md).
"""

from __future__ import annotations

import hashlib
import marshal
import multiprocessing as mp
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Float,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.sql.expression import cast, false
from sqlalchemy.types import Text

from creditbridge import CreditbridgeError
from creditbridge.mappings import marks
from creditbridge.mappings.evaluate import Course, Evaluation, Person, Result, Rules, SchoolStats
from creditbridge.programmes import Programme, builtin_rule_path, load_programme
from creditbridge.settings import Settings
from creditbridge.store import Store, open_store
from creditbridge.store.copy import copy_rows
from creditbridge.store.keys import in_keys, keys_value
from creditbridge.store.locks import flow_lock
from creditbridge.store.models.base import UtcDateTime, utcnow
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher
from creditbridge.store.models.credits import CreditEvaluationRun, CreditResult, CreditResultChange

DEFAULT_CHUNK = 5000
# Marked teachers are read by key lists of at most this many: for a few thousand keys PostgreSQL's planner
# prefers scanning the whole table to probing its index (1M teachers: 5,000 keys made a 3.4 s parallel scan of
# learning_record's 12M rows, 1,000 keys a 0.18 s index scan), so a larger list makes the cost grow with the
# province again.
MARKED_CHUNK = 1000
# a full run that wrote at least this many results refreshes the planner's statistics of credit_result (PostgreSQL)
ANALYZE_AFTER = 10_000
_first = itemgetter(0)
CR = CreditResult.__table__
LR = LearningRecordRow.__table__
TE = Teacher.__table__
LCA = LessonCaseAssignment.__table__


class EvaluationError(CreditbridgeError):
    pass


@dataclass
class Counts:
    evaluated: int = 0
    changed: int = 0  # pushed outcome new or different (result_hash), or withdrawn
    new: int = 0
    updated: int = 0  # stored row rewritten (reasons, rule version, ...) without a pushed change
    withdrawn: int = 0
    passed: int = 0
    failed: int = 0
    by_programme: dict[str, dict[str, Any]] = field(default_factory=dict)
    # marks deleted unread, per programme: programmes never evaluated whole (see marks.dispose_unneeded)
    marks_disposed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"evaluated": self.evaluated, "changed": self.changed, "new": self.new, "updated": self.updated,
                "withdrawn": self.withdrawn, "passed": self.passed, "failed": self.failed,
                "programmes": self.by_programme, "marks_disposed": self.marks_disposed}


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _pushed(row: Any) -> dict[str, Any]:
    return {"hours": _f(row["hours"]), "credits": _f(row["credits"]), "points": _f(row["points"]),
            "passed": bool(row["passed"]), "rule_version": row["rule_version"], "rule_hash": row["rule_hash"]}


# The JSON columns are written and compared as text made by orjson (ten times json.dumps' speed, which mattered
# at a million rows): a stored row is read back as its text (CAST … AS TEXT, no parsing) and compared with the
# new row's text, so an unchanged result costs a string comparison, not three JSON decodes. Every write of these
# columns goes through `_dumps`, never through SQLAlchemy's JSON serializer, so the two texts always agree.
def _dumps(v: Any) -> str:
    return orjson.dumps(v).decode()


_INSERT_COLS = ("programme", "teacher", "role", "year", "hours", "credits", "points", "passed", "components",
                "reasons", "reasons_zh", "rule_version", "rule_hash", "result_hash", "evaluated_at", "input_hash")
_JSON_COLS = frozenset({"components", "reasons", "reasons_zh"})
# what the comparison and the change log need of a stored result, JSON columns as text
EXISTING_COLS = (CR.c.id, CR.c.teacher, CR.c.role, CR.c.hours, CR.c.credits, CR.c.points, CR.c.passed,
                 CR.c.rule_version, CR.c.rule_hash, CR.c.result_hash, CR.c.input_hash,
                 *(cast(CR.c[c], Text).label(c) for c in ("components", "reasons", "reasons_zh")))


# Part of every input fingerprint: change it whenever the evaluator's logic changes without a rule-file change,
# so that the next run re-evaluates everyone instead of keeping results computed by the old logic.
EVALUATOR_VERSION = "2"


def fingerprint_salt(prog: Programme, rules: Rules) -> bytes:
    """What every person's fingerprint shares: evaluator version, rule file hash and the catalog."""
    catalog = repr(sorted(rules.catalog.items()))
    return hashlib.sha256(f"{EVALUATOR_VERSION}|{prog.hash}|{catalog}".encode()).digest()


def fingerprint(salt: bytes, person: str, records: list[tuple[Any, ...]], assigned: Iterable[str]) -> str:
    """The inputs of one person's results: `person` (school, stage, subject, city, the school's topics), the
    records the evaluator sees and the assigned lesson cases. Records are taken in the order the store returns
    them, not sorted (sorting cost more than the rest of the fingerprint): should that order ever differ for
    the same records, the fingerprint differs and the person is evaluated again, which gives the same result
    (evaluation does not depend on record order), so a spurious difference costs time, never correctness.
    The records are serialised with marshal (a fifth of repr's cost); its format may change with the Python
    version, which again costs one re-evaluation, never a wrong result."""
    h = hashlib.blake2b(salt, digest_size=20)
    h.update(person.encode())
    h.update(marshal.dumps(records))
    h.update("\x1e".join(sorted(assigned)).encode())
    return h.hexdigest()


_UPDATE_COLS = ("year", "hours", "credits", "points", "passed", "components", "reasons", "reasons_zh",
                "rule_version", "rule_hash", "result_hash", "evaluated_at", "input_hash")


def _mark(dialect: Any, col: str) -> str:
    if dialect.name == "postgresql":
        return "%s::json" if col in _JSON_COLS else "%s"
    return "?"


# Table and column names below are this module's constants; every value is a bound parameter.
def _insert_sql(dialect: Any) -> str:
    marks = ", ".join(_mark(dialect, c) for c in _INSERT_COLS)
    return f"INSERT INTO {CR.name} ({', '.join(_INSERT_COLS)}) VALUES ({marks})"  # noqa: S608


def _update_sql(dialect: Any) -> str:
    sets = ", ".join(f"{c} = {_mark(dialect, c)}" for c in _UPDATE_COLS)
    return f"UPDATE {CR.name} SET {sets} WHERE id = {_mark(dialect, 'id')}"  # noqa: S608


def _time_to_db(dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy binds for a UtcDateTime on this dialect (SQLite: its own text form), for the rows this
    module hands to the DBAPI directly: the same text as every ORM write, so stored times compare as text."""
    return UtcDateTime().dialect_impl(dialect).bind_processor(dialect)


def _same_content(old: Any, result_hash: str, prog: Programme, texts: tuple[str, str, str]) -> bool:
    return (old.result_hash == result_hash and old.rule_hash == prog.hash and old.rule_version == prog.version
            and old.components == texts[0] and old.reasons == texts[1] and old.reasons_zh == texts[2])


class _Writer:
    """Compares a batch of results with the stored ones and writes only the differences."""

    def __init__(self, conn: Connection, prog: Programme, run_id: int, counts: Counts, pc: dict[str, int]) -> None:
        self.conn, self.prog, self.run_id, self.counts, self.pc = conn, prog, run_id, counts, pc
        self.insert_sql = _insert_sql(conn.dialect)
        self.update_sql = _update_sql(conn.dialect)
        self.copy = conn.dialect.name == "postgresql"
        self.kept: set[tuple[str, str]] = set()
        self.to_db = _time_to_db(conn.dialect)

    def keep(self, old: Any) -> None:
        """A stored result that stands (its inputs did not change): counted, not rewritten."""
        self.kept.add((old.teacher, old.role))
        self.counts.evaluated += 1
        self.pc["evaluated"] += 1
        if old.passed:
            self.counts.passed += 1
        else:
            self.counts.failed += 1

    def write(self, results: list[Result], existing: dict[tuple[str, str], Any],
              stale_scope: Iterable[tuple[str, str]]) -> None:
        now = utcnow()
        now_db = self.to_db(now) if self.to_db else now
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        changes: list[dict[str, Any]] = []
        refingerprint: list[tuple[str | None, int]] = []
        seen, self.kept = self.kept, set()
        prog, counts, pc = self.prog, self.counts, self.pc
        for r in results:
            key = (r.teacher, r.role)
            seen.add(key)
            counts.evaluated += 1
            pc["evaluated"] += 1
            if r.passed:
                counts.passed += 1
            else:
                counts.failed += 1
            rh = r.result_hash
            texts = (_dumps(r.components), _dumps(r.reasons), _dumps(r.reasons_zh))
            old = existing.get(key)
            if old is None:
                inserts.append((r.programme, r.teacher, r.role, r.year, r.hours, r.credits, r.points, r.passed,
                                *texts, prog.version, prog.hash, rh, now_db, r.input_hash))
                counts.new += 1
                counts.changed += 1
                pc["changed"] += 1
                continue
            if _same_content(old, rh, prog, texts):
                if old.input_hash != r.input_hash:
                    refingerprint.append((r.input_hash, old.id))
                continue
            updates.append((r.year, r.hours, r.credits, r.points, r.passed, *texts, prog.version, prog.hash, rh,
                            now_db, r.input_hash, old.id))
            if old.result_hash != rh:
                counts.changed += 1
                pc["changed"] += 1
                after = {"hours": r.hours, "credits": r.credits, "points": r.points, "passed": r.passed,
                         "rule_version": prog.version, "rule_hash": prog.hash}
                changes.append({"run_id": self.run_id, "programme": r.programme, "teacher": r.teacher,
                                "role": r.role, "before": _pushed(old._mapping), "after": after,
                                "rule_changed": old.rule_hash != prog.hash, "at": now})
            else:
                counts.updated += 1
        stale = [existing[k] for k in stale_scope if k not in seen]
        if inserts:
            # Straight to the DBAPI, no per-row parameter processing for up to a million rows: COPY on
            # PostgreSQL (an executemany there is one round trip per row), executemany on SQLite.
            if self.copy:
                copy_rows(self.conn, CR.name, _INSERT_COLS, inserts)
            else:
                self.conn.exec_driver_sql(self.insert_sql, inserts)
        if updates:
            if self.copy and len(updates) >= _COPY_UPDATE_MIN:
                self._copy_update(_UPDATE_TEMP, _UPDATE_COLS, updates)
            else:
                self.conn.exec_driver_sql(self.update_sql, updates)
        if refingerprint:  # same result from other inputs (or a row stored before fingerprints): note the inputs
            if self.copy and len(refingerprint) >= _COPY_UPDATE_MIN:
                self._copy_update(_REFINGERPRINT_TEMP, ("input_hash",), refingerprint)
            else:
                self.conn.execute(update(CR).where(CR.c.id == bindparam("_id")).values(input_hash=bindparam("_h")),
                                  [{"_h": h, "_id": i} for h, i in refingerprint])
        if stale:
            # A person no longer evaluated (left the roster, no host records any more): the outbox voids it.
            self.conn.execute(delete(CR).where(CR.c.id.in_([s.id for s in stale])))
            for s in stale:
                changes.append({"run_id": self.run_id, "programme": self.prog.id, "teacher": s.teacher, "role": s.role,
                                "before": _pushed(s._mapping), "after": {"withdrawn": True},
                                "rule_changed": s.rule_hash != self.prog.hash, "at": now})
            self.counts.withdrawn += len(stale)
            self.counts.changed += len(stale)
            self.pc["changed"] += len(stale)
        if changes:
            if self.copy and len(changes) >= _COPY_UPDATE_MIN:
                # JSON as orjson text, like the result columns: an executemany would be a round trip per row
                copy_rows(self.conn, CreditResultChange.__tablename__, _CHANGE_COLS, [
                    (*(c[k] for k in _CHANGE_COLS[:4]), _dumps(c["before"]), _dumps(c["after"]), c["rule_changed"],
                     c["at"]) for c in changes])
            else:
                self.conn.execute(insert(CreditResultChange.__table__), changes)

    def _copy_update(self, temp: str, set_cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: the rows (`set_cols` values, then the id) COPYed into a temporary table and applied by one
        UPDATE ... FROM. An executemany UPDATE costs a round trip per row (pipelined, still most of an
        incremental run's time)."""
        columns = (*set_cols, "id")
        self.conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT {', '.join(columns)} FROM {CR.name} WITH NO DATA")
        copy_rows(self.conn, temp, columns, rows)
        sets = ", ".join(f"{c} = u.{c}" for c in set_cols)
        self.conn.exec_driver_sql(f"UPDATE {CR.name} SET {sets} FROM {temp} u "  # noqa: S608
                                  f"WHERE {CR.name}.id = u.id")


# from this many rewritten results on, PostgreSQL updates through COPY into a temporary table (see _copy_update)
_COPY_UPDATE_MIN = 50
_UPDATE_TEMP = "credit_result_update"
_REFINGERPRINT_TEMP = "credit_result_refingerprint"
_CHANGE_COLS = ("run_id", "programme", "teacher", "role", "before", "after", "rule_changed", "at")


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


def _range(col: Any, lo: str | None, hi: str | None) -> Any:
    parts = []
    if lo is not None:
        parts.append(col > lo)
    if hi is not None:
        parts.append(col <= hi)
    return and_(*parts) if parts else literal(True)


_Shape = tuple[str, tuple[str, ...] | None, dict[str, Any]]


class _RecordQuery:
    """The records (and lesson-case assignments) of a key range or of a list of teachers, fetched through the
    DBAPI cursor of the chunk's connection (same transaction): the hot path of a million-teacher run, where
    building a Row per record would cost as much as reading it. The SQL is compiled by SQLAlchemy once per
    shape (range ends present or not, or a key list), for the dialect in use. Both shapes give the same rows,
    so a teacher's fingerprint is the same whether a full or an incremental run reads it."""

    def __init__(self, conn: Connection, programme: str, rules: Rules) -> None:
        self.conn = conn
        dialect = conn.dialect
        to_db = _time_to_db(dialect)
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


def _programmes(store: Store, settings: Settings, programme: str | None) -> list[str]:
    if programme:
        return [programme]
    with store.engine.connect() as conn:
        codes = [c for (c,) in conn.execute(select(TE.c.programme).distinct().order_by(TE.c.programme))]
    known = [c for c in codes if builtin_rule_path(c) is not None]
    if known:
        return known
    fallback = getattr(getattr(settings, "sync", None), "programme", None)
    return [fallback] if fallback else []


def evaluate_store(settings: Settings, store: Store, *, programme: str | None = None, chunk_size: int = DEFAULT_CHUNK,
                   progress: Callable[[int], None] | None = None, workers: int = 1,
                   wait: bool = False, incremental: bool = False) -> dict[str, Any]:
    """Evaluate every teacher (and host and school) of one programme, or of every programme in the store
    that has a rule file, and store the results. Returns counts (evaluated, changed, passed, failed, ...).

    `programme` is a programme id or the path of a rule file. `workers` > 1 splits the roster into that
    many key ranges evaluated by separate processes (the evaluation is CPU-bound Python).

    `incremental`: evaluate only the teachers marked since (credit_mark, see marks.py), unless the programme
    must be evaluated whole (`marks.full_reason`: no complete run yet, a rule file whose hash changed, a
    catalog change, a large share of the roster marked). Each programme's counts say which `mode` ran and
    why (`reason`). Marks of programmes that never had a complete run are deleted unread (their first run
    evaluates everyone), counted per programme in `marks_disposed`."""
    counts = Counts()
    # One evaluation at a time per store (store/locks.py): two would write the same results and run rows.
    with flow_lock(store, "evaluate", "credits evaluate", wait=wait):
        for code in _programmes(store, settings, programme):
            prog = load_programme(code)
            reason = marks.full_reason(store, prog, EVALUATOR_VERSION) if incremental else "--all"
            if reason is None:
                _evaluate_marked(store, prog, counts, chunk_size, progress)
            else:
                _evaluate_programme(store, code, prog, counts, chunk_size, progress, max(1, workers))
                counts.by_programme[prog.id]["reason"] = reason
        # after the programmes: one evaluated here for the first time has its complete run now, so its marks stay
        with store.engine.begin() as conn:
            counts.marks_disposed = marks.dispose_unneeded(conn)
    return counts.as_json()


@dataclass
class _Segment:
    """What one key range produced: counts, what the school-admin role needs from it, and the marks it
    evaluated but left for the end of the run (programmes with a school-admin role)."""

    counts: Counts
    pc: dict[str, int]
    schools: dict[str, SchoolStats]
    deferred_marks: list[int] = field(default_factory=list)


class _People:
    """Evaluates chunks of roster people read from the store, keeping a stored result whose input fingerprint
    is unchanged (the same code for a key range of a full run and for the marked teachers of an incremental
    one)."""

    def __init__(self, ev: Evaluation, prog: Programme, writer: _Writer) -> None:
        self.ev, self.writer = ev, writer
        self.normalised: dict[tuple[Any, Any, Any], tuple[str | None, str | None, str | None]] = {}
        self.person_inputs: dict[tuple[str, tuple[str | None, str | None, str | None]], str] = {}
        self.salt = fingerprint_salt(prog, ev.rules)
        self.has_teacher_role = "teacher" in prog.roles

    def evaluate(self, people: Sequence[Any], records: list[tuple[Any, ...]], assignments: list[tuple[Any, ...]],
                 existing: dict[tuple[str, str], Any]) -> list[Result]:
        ev, writer, salt = self.ev, self.writer, self.salt
        normalised, person_inputs = self.normalised, self.person_inputs
        # rows come ordered by teacher: one group per teacher, each row already the evaluator's RecTuple
        by_teacher = {t: list(g) for t, g in groupby(records, _first)}
        assigned: dict[str, set[str]] = {}
        for t, c in assignments:
            a = assigned.get(t)
            if a is None:
                a = assigned[t] = set()
            a.add(c)
        empty: frozenset[str] = frozenset()
        results: list[Result] = []
        for idn, school, stage, subject, city in people:
            # stage/subject/city normalised once per distinct combination, not once per teacher
            norm = normalised.get((stage, subject, city))
            if norm is None:
                p = Person.of("", "", stage, subject, city)
                norm = normalised[(stage, subject, city)] = (p.stage, p.subject, p.city)
            person = Person(idn, school, *norm)
            recs = by_teacher.get(idn, [])
            asg = assigned.get(idn, empty)
            # what the fingerprint says of the person, made once per school and normalised combination
            inputs = person_inputs.get((school, norm))
            if inputs is None:
                topics = "\x1f".join(sorted(ev.topics.get(school, ev.default_topics)))
                inputs = person_inputs[(school, norm)] = f"{school}\x1f{norm}\x1f{topics}"
            fp = fingerprint(salt, inputs, recs, asg)
            old = existing.get((idn, "teacher")) if self.has_teacher_role else None
            if old is not None and old.input_hash == fp:
                host = existing.get((idn, "workshop_host"))
                if (host is not None and host.input_hash == fp) or (host is None and not ev.has_host_records(recs)):
                    # inputs unchanged since the stored result: it stands, without evaluating
                    ev.unchanged(person, recs, bool(old.passed))
                    writer.keep(old)
                    if host is not None:
                        writer.keep(host)
                    continue
            for r in ev.teacher(person, recs, asg):
                r.input_hash = fp
                results.append(r)
        return results


def _people_cols() -> tuple[Any, ...]:
    return TE.c.id_number, TE.c.school_code, TE.c.stage, TE.c.subject, TE.c.city


def _run_segment(conn: Connection, prog: Programme, run_id: int, start: str | None, end: str | None,
                 chunk_size: int, progress: Callable[[int], None] | None) -> tuple[_Segment, Evaluation]:
    """Teachers with start < ID number <= end (None: open), chunk by chunk: read in one transaction,
    evaluate, write in another (a short write transaction: SQLite allows one writer at a time). The marks of
    the chunk's people are read before their inputs and deleted with the chunk's results (or, when a
    school-admin result depends on them, returned to be deleted once that is written)."""
    code = prog.id
    with conn.begin():
        rules = Rules(prog, load_catalog(conn, code))
        ev = Evaluation(rules, load_school_topics(conn, code))
    counts, pc = Counts(), {"evaluated": 0, "changed": 0}
    writer = _Writer(conn, prog, run_id, counts, pc)
    evaluator = _People(ev, prog, writer)
    person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
    records = _RecordQuery(conn, code, rules)
    defer_marks = "school_admin" in prog.roles
    deferred: list[int] = []
    last = start
    while True:
        with conn.begin():
            q = select(*_people_cols()).where(TE.c.programme == code, _range(TE.c.id_number, last, end))
            people = conn.execute(q.order_by(TE.c.id_number).limit(chunk_size)).all()
            final = len(people) < chunk_size
            lo, hi = last, (end if final else people[-1].id_number)
            # before the inputs: a mark committed after this read is left for the next evaluation
            chunk_marks = marks.read_range(conn, code, lo, hi)
            recs = records.fetch(lo, hi)
            asg = records.assignments(lo, hi)
            existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
                CR.c.programme == code, CR.c.role.in_(person_roles), _range(CR.c.teacher, lo, hi))).all()}
            # On PostgreSQL (READ COMMITTED) a teacher added to the range after the roster read above has a mark
            # read here but was not evaluated: such a mark stays. A marked key not on the roster now (records of
            # someone not in the roster) is done: adding them later marks them again.
            seen = {p.id_number for p in people} | {k[0] for k in existing}
            unseen = sorted({t for _, t in chunk_marks if t not in seen})
            late = set(conn.execute(select(TE.c.id_number).where(
                TE.c.programme == code, TE.c.id_number.in_(unseen))).scalars()) if unseen else set()
        results = evaluator.evaluate(people, recs, asg, existing)
        done = [i for i, t in chunk_marks if t not in late]
        with conn.begin():
            writer.write(results, existing, existing.keys())
            if defer_marks:
                deferred.extend(done)
            else:
                marks.delete(conn, done)
        if progress is not None and people:
            progress(len(people))
        if final:
            break
        last = people[-1].id_number
    return _Segment(counts, pc, ev.schools, deferred), ev


def _segment_worker(url: str, rule_source: str, rule_hash: str, run_id: int, start: str | None, end: str | None,
                    chunk_size: int) -> _Segment:
    """One worker process: its own engine, the same rule file (checked by hash), one key range."""
    prog = load_programme(rule_source)
    if prog.hash != rule_hash:
        raise EvaluationError(f"rule file {rule_source} changed during the evaluation")
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            seg, _ev = _run_segment(conn, prog, run_id, start, end, chunk_size, None)
        return seg
    finally:
        store.dispose()


def _boundaries(conn: Connection, code: str, parts: int) -> list[str | None]:
    """Key-range ends splitting the roster into `parts` nearly equal ranges: [None, e1, ..., None]."""
    total = conn.execute(select(func.count()).select_from(TE).where(TE.c.programme == code)).scalar_one()
    ends: list[str | None] = [None]
    for k in range(1, parts):
        at = conn.execute(select(TE.c.id_number).where(TE.c.programme == code).order_by(TE.c.id_number)
                          .offset(max(0, total * k // parts - 1)).limit(1)).scalar()
        if at is not None and at != ends[-1]:
            ends.append(at)
    return [*ends, None]


def _start_run(conn: Connection, prog: Programme, mode: str) -> int:
    runs = CreditEvaluationRun.__table__
    return conn.execute(insert(runs).values(
        programme=prog.id, rule_version=prog.version, rule_hash=prog.hash, started_at=utcnow(), mode=mode,
        evaluator_version=EVALUATOR_VERSION,
        evaluated=0, changed=0, passed=0, failed=0).returning(runs.c.id)).scalar_one()


def _finish_run(conn: Connection, run_id: int, pc: dict[str, int], passed: int, failed: int) -> None:
    runs = CreditEvaluationRun.__table__
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        finished_at=utcnow(), evaluated=pc["evaluated"], changed=pc["changed"], passed=passed, failed=failed))


def _evaluate_programme(store: Store, source: str, prog: Programme, counts: Counts, chunk_size: int,
                        progress: Callable[[int], None] | None, workers: int) -> None:
    code = prog.id
    with store.engine.connect() as conn:
        with conn.begin():
            run_id = _start_run(conn, prog, "all")
            bounds = _boundaries(conn, code, workers) if workers > 1 else [None, None]
            # school and programme-wide marks: before any input is read, done when the whole run is
            whole_marks = marks.read_whole(conn, code)
        if len(bounds) <= 2:
            seg, ev = _run_segment(conn, prog, run_id, None, None, chunk_size, progress)
            segments = [seg]
        else:
            with conn.begin():
                ev = Evaluation(Rules(prog, load_catalog(conn, code)), load_school_topics(conn, code))
            # spawn, not fork: a forked child would share this process's open connections
            with ProcessPoolExecutor(len(bounds) - 1, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_segment_worker, store.url, str(_source_path(source)), prog.hash, run_id,
                                       bounds[i], bounds[i + 1], chunk_size) for i in range(len(bounds) - 1)]
                segments = []
                for f in futures:
                    segments.append(f.result())
                    if progress is not None:
                        progress(segments[-1].pc["evaluated"])
            for seg in segments:
                for school, st in seg.schools.items():
                    mine = ev.schools.setdefault(school, SchoolStats())
                    mine.teachers += st.teachers
                    mine.passed += st.passed
                    mine.records.extend(st.records)
        pc = {"evaluated": 0, "changed": 0}
        for seg in segments:
            for k in ("evaluated", "changed", "new", "updated", "withdrawn", "passed", "failed"):
                setattr(counts, k, getattr(counts, k) + getattr(seg.counts, k))
            pc["evaluated"] += seg.pc["evaluated"]
            pc["changed"] += seg.pc["changed"]
        before_passed = counts.passed - sum(s.counts.passed for s in segments)
        before_failed = counts.failed - sum(s.counts.failed for s in segments)
        writer = _Writer(conn, prog, run_id, counts, pc)
        person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
        with conn.begin():
            admin = ev.finish()
            existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
                CR.c.programme == code, CR.c.role == "school_admin"))}
            writer.write(admin, existing, existing.keys())
            kept = [*person_roles, "school_admin"] if "school_admin" in prog.roles else person_roles
            stale_roles = conn.execute(select(*EXISTING_COLS).where(CR.c.programme == code,
                                                                    CR.c.role.not_in(kept))).all()
            writer.write([], {(r.teacher, r.role): r for r in stale_roles}, [(r.teacher, r.role) for r in stale_roles])
            marks.delete(conn, [*whole_marks, *(i for s in segments for i in s.deferred_marks)])
            _finish_run(conn, run_id, pc, counts.passed - before_passed, counts.failed - before_failed)
        if store.is_postgres and pc["changed"] >= ANALYZE_AFTER:
            # Fresh statistics after a large write: with the old ones (an empty table before the first run) the
            # planner reads the results of a few marked teachers by scanning every result of the programme
            # (1M teachers: 2 s per 1,000 keys instead of milliseconds). Autovacuum would, later, or never
            # where it is off; ANALYZE samples a fixed number of rows, a fraction of a second.
            with conn.begin():
                conn.exec_driver_sql(f"ANALYZE {CR.name}")
    counts.by_programme[code] = {"evaluated": pc["evaluated"], "changed": pc["changed"], "run_id": run_id,
                                 "rule_version": prog.version, "rule_hash": prog.hash, "mode": "all"}


def _evaluate_marked(store: Store, prog: Programme, counts: Counts, chunk_size: int,
                     progress: Callable[[int], None] | None) -> None:
    """Evaluate the marked teachers of a programme only, and the school-admin results of their schools (old and
    new), from their stored teacher results: what a full run would store, at the cost of the change.

    Every mark is read before any input, so whatever a mark stands for is visible to the reads that follow;
    exactly the marks read are deleted, with the results they led to (at the end when a school-admin result
    depends on them), so a mark committed meanwhile stays for the next run."""
    code = prog.id
    before_passed, before_failed = counts.passed, counts.failed
    pc = {"evaluated": 0, "changed": 0}
    with store.engine.connect() as conn:
        with conn.begin():
            run_id = _start_run(conn, prog, "incremental")
            found = marks.read_all(conn, code)
            rules = Rules(prog, load_catalog(conn, code))
            ev = Evaluation(rules, {})  # school topics: read with the teachers (_MarkedReader)
            # a topic change: every teacher of the school
            teachers = set(found.teachers) | marks.teachers_of_schools(conn, code, found.whole_schools)
        writer = _Writer(conn, prog, run_id, counts, pc)
        evaluator = _People(ev, prog, writer)
        person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
        records = _RecordQuery(conn, code, rules)
        has_admin = "school_admin" in prog.roles
        schools = set(found.schools)
        keys = sorted(teachers)
        step = min(chunk_size, MARKED_CHUNK)
        chunks = [keys[at:at + step] for at in range(0, len(keys), step)]
        # PostgreSQL: the next chunk's inputs are read on a second connection while this chunk is evaluated and
        # written, so the server's work overlaps the evaluation's. The chunks hold other teachers, so a read
        # never waits for a write. SQLite reads on the one connection, in turn.
        prefetch = store.is_postgres and len(chunks) > 1
        with ExitStack() as stack:
            read_conn = stack.enter_context(store.engine.connect()) if prefetch else conn
            reader = _MarkedReader(read_conn, code, rules, person_roles)
            pool = stack.enter_context(ThreadPoolExecutor(1)) if prefetch else None
            ahead = pool.submit(reader.read, chunks[0]) if pool is not None else None
            for n, chunk in enumerate(chunks):
                if pool is not None and ahead is not None:
                    got = ahead.result()
                    ahead = pool.submit(reader.read, chunks[n + 1]) if n + 1 < len(chunks) else None
                else:
                    got = reader.read(chunk)
                ev.add_school_topics(got.topics)
                results = evaluator.evaluate(got.people, got.records, got.assignments, got.existing)
                schools.update(p.school_code for p in got.people)
                with conn.begin():
                    writer.write(results, got.existing, got.existing.keys())
                    if not has_admin:
                        marks.delete(conn, [i for t in chunk for i in found.teachers.get(t, ())])
                if progress is not None and got.people:
                    progress(len(got.people))
        with conn.begin():
            if has_admin:
                _admin_of(conn, prog, rules, records, writer, sorted(schools))
            marks.delete(conn, found.ids if has_admin else found.whole_ids)
            _finish_run(conn, run_id, pc, counts.passed - before_passed, counts.failed - before_failed)
    counts.by_programme[code] = {"evaluated": pc["evaluated"], "changed": pc["changed"], "run_id": run_id,
                                 "rule_version": prog.version, "rule_hash": prog.hash, "mode": "incremental",
                                 "reason": f"{len(teachers)} marked teacher(s)", "marked": len(teachers)}


@dataclass
class _Inputs:
    """What the evaluation of a chunk of marked teachers reads: roster rows, the topics of schools not read
    before, records, lesson-case assignments and stored results."""

    people: Sequence[Any]
    topics: dict[str, list[str]]
    records: list[tuple[Any, ...]]
    assignments: list[tuple[Any, ...]]
    existing: dict[tuple[str, str], Any]


class _MarkedReader:
    """Reads the inputs of chunks of marked teachers, each chunk in one transaction of its connection. Used by
    one thread at a time (the prefetching one on PostgreSQL): it alone keeps which schools' topics it read."""

    def __init__(self, conn: Connection, code: str, rules: Rules, person_roles: Sequence[str]) -> None:
        self.conn, self.code = conn, code
        self.records = _RecordQuery(conn, code, rules)
        self.topics_read: set[str] = set()
        d = conn.dialect
        # one statement each for any number of keys (store/keys.py), compiled once
        self.people_q = select(*_people_cols()).where(TE.c.programme == code, in_keys(d, TE.c.id_number)
                                                      ).order_by(TE.c.id_number)
        self.existing_q = select(*EXISTING_COLS).where(CR.c.programme == code, CR.c.role.in_(person_roles),
                                                       in_keys(d, CR.c.teacher))

    def read(self, chunk: list[str]) -> _Inputs:
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
        return _Inputs(people, topics, recs, asg, existing)


def _admin_of(conn: Connection, prog: Programme, rules: Rules, records: _RecordQuery, writer: _Writer,
              schools: list[str]) -> None:
    """The school-admin results of these schools from SQL: each school's roster teachers, how many of them
    passed by their stored teacher-role results, and its teachers' admin-task records. No unmarked teacher is
    evaluated again: their stored results are current (nothing of theirs changed since)."""
    code = prog.id
    d = conn.dialect
    # key lists bound as one parameter, MARKED_CHUNK at a time (see MARKED_CHUNK: the planner and large lists)
    roster = (select(TE.c.school_code, func.count()).where(TE.c.programme == code, in_keys(d, TE.c.school_code))
              .group_by(TE.c.school_code))
    passed = (select(TE.c.school_code, func.count())
              .join_from(TE, CR, and_(CR.c.programme == TE.c.programme, CR.c.teacher == TE.c.id_number,
                                      CR.c.role == "teacher"))
              .where(TE.c.programme == code, in_keys(d, TE.c.school_code), CR.c.passed.is_(True))
              .group_by(TE.c.school_code))
    stored = select(*EXISTING_COLS).where(CR.c.programme == code, CR.c.role == "school_admin",
                                          in_keys(d, CR.c.teacher))
    stats: dict[str, SchoolStats] = {}
    existing: dict[tuple[str, str], Any] = {}
    for at in range(0, len(schools), MARKED_CHUNK):
        part = schools[at:at + MARKED_CHUNK]
        bound = {"keys": keys_value(d, part)}
        for school, n in conn.execute(roster, bound).all():
            stats[school] = SchoolStats(teachers=n)
        for school, n in conn.execute(passed, bound).all():
            stats[school].passed = n
        for row in records.admin_records_of(part):
            stats[row[-1]].records.append(row[:-1])
        existing.update({(r.teacher, r.role): r for r in conn.execute(stored, bound).all()})
    plan = rules.plan("school_admin")
    admin = [plan.evaluate(school, st.records, school=st) for school, st in sorted(stats.items())]
    # a school without roster teachers any more has no admin result: its stored one is withdrawn
    writer.write(admin, existing, existing.keys())


def _source_path(source: str) -> str:
    """A programme id or rule-file path as something a worker process can load the same file from."""
    path = builtin_rule_path(source)
    return str(path) if path is not None else source


def stored_result(store: Store, teacher: str, programme: str | None = None,
                  role: str | None = None) -> list[dict[str, Any]]:
    """The stored results of one person (or school, for school_admin), newest programme first."""
    q = select(CR).where(CR.c.teacher == teacher)
    if programme:
        q = q.where(CR.c.programme == programme)
    if role:
        q = q.where(CR.c.role == role)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(CR.c.programme, CR.c.role)).all()
    return [result_json(r._mapping) for r in rows]


LIST_KEYS = ("teacher", "programme", "role", "hours", "credits", "points", "passed", "components", "reasons",
             "reasons_zh")


def iter_results(store: Store, programmes: list[str], batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every stored result of the programmes, in the `credits evaluate --json` list shape, one at a time:
    read through a server-side cursor (stream_results + yield_per), so memory stays flat for a million."""
    if not programmes:
        return
    with store.engine.connect() as conn:
        res = conn.execution_options(stream_results=True, yield_per=batch).execute(
            select(*(CR.c[k] for k in LIST_KEYS)).where(CR.c.programme.in_(programmes)).order_by(
                CR.c.programme, CR.c.role, CR.c.teacher))
        for r in res:
            m = r._mapping
            yield {"teacher": m["teacher"], "programme": m["programme"], "role": m["role"], "hours": _f(m["hours"]),
                   "credits": _f(m["credits"]), "points": _f(m["points"]), "passed": bool(m["passed"]),
                   "components": m["components"], "reasons": m["reasons"], "reasons_zh": m["reasons_zh"]}


def all_results(store: Store, programmes: list[str]) -> list[dict[str, Any]]:
    """Every stored result of the programmes, in the `credits evaluate --json` list shape."""
    return list(iter_results(store, programmes))


def result_json(m: Any) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        return None if v is None else float(v) if isinstance(v, Decimal | int | float) else v

    return {"teacher": m["teacher"], "programme": m["programme"], "role": m["role"], "year": m["year"],
            "hours": num(m["hours"]), "credits": num(m["credits"]), "points": num(m["points"]),
            "passed": bool(m["passed"]), "components": m["components"], "reasons": m["reasons"],
            "reasons_zh": m["reasons_zh"], "rule_version": m["rule_version"], "rule_hash": m["rule_hash"],
            "result_hash": m["result_hash"]}


def recent_changes(store: Store, run_id: int, limit: int = 20) -> list[dict[str, Any]]:
    t = CreditResultChange.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.run_id == run_id).order_by(t.c.id).limit(limit)).all()
        total = conn.execute(select(func.count()).select_from(t).where(t.c.run_id == run_id)).scalar_one()
    out = [{"teacher": r.teacher, "role": r.role, "before": r.before, "after": r.after,
            "rule_changed": r.rule_changed} for r in rows]
    return [*out, {"more": total - len(out)}] if total > len(out) else out


# --- the continuous worker's entry point (runner/worker.py) ------------------------------------------------


def start_continuous_run(conn: Connection, prog: Programme) -> int:
    """The evaluation-run row a continuous worker writes its batches under (mode "continuous": never taken for
    a complete run by `marks.full_reason`). The caller commits it."""
    return _start_run(conn, prog, "continuous")


def evaluate_teachers(conn: Connection, prog: Programme, run_id: int, teachers: list[str], schools: set[str],
                      *, claim_schools: Callable[[list[str]], None] | None = None,
                      cache: dict[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate these (claimed) teachers of a programme and store their results, inside the caller's open
    transaction: the worker deletes its claimed marks and builds the outbox in the same transaction, so a
    worker killed mid-batch leaves nothing half-done. The same evaluation as an incremental run (fingerprints,
    stored-result comparison, change log); marks are the caller's. `schools` are schools the marks named (an old
    school after a transfer): with the teachers' current schools, their school-admin results are recomputed
    after `claim_schools(sorted schools)` (the caller's lock, so two workers never write one school's result
    from two views). The school topics read are only those of the teachers' schools. `cache`: a dict the caller
    keeps between batches, holding the compiled record queries (compiling them was ~80 ms of every batch)."""
    code = prog.id
    counts = Counts()
    pc = {"evaluated": 0, "changed": 0}
    keys = sorted(set(teachers))
    people = list(conn.execute(select(*_people_cols()).where(
        TE.c.programme == code, TE.c.id_number.in_(keys)).order_by(TE.c.id_number)))
    own = sorted({p.school_code for p in people if p.school_code is not None})
    t = SchoolTopic.__table__
    topics: dict[str, list[str]] = {}
    if own:
        for school, topic in conn.execute(select(t.c.school_code, t.c.topic).where(
                t.c.programme == code, t.c.school_code.in_(own))):
            topics.setdefault(school, []).append(topic)
    rules = Rules(prog, load_catalog(conn, code))
    ev = Evaluation(rules, topics)
    writer = _Writer(conn, prog, run_id, counts, pc)
    # what the compiled SQL depends on: dialect, rule file, the codes and windows taken from the catalog
    shape = (conn.dialect.name, code, prog.hash, tuple(sorted(rules.codes)),
             tuple(sorted(rules.matches.get("school_admin", {}))), rules.window_start, rules.window_end,
             bool(rules.component_windows))
    records = cache.get(shape) if cache is not None else None
    if records is None:
        records = _RecordQuery(conn, code, rules)
        if cache is not None:
            cache.clear()  # one shape per programme is current; an old one is never used again
            cache[shape] = records
    else:
        records.conn = conn
    person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
    existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
        CR.c.programme == code, CR.c.role.in_(person_roles), CR.c.teacher.in_(keys)))}
    results = _People(ev, prog, writer).evaluate(people, records.fetch_of(keys), records.assignments_of(keys),
                                                 existing)
    writer.write(results, existing, existing.keys())
    if "school_admin" in prog.roles:
        every = sorted((schools | set(own)) - {None})
        if claim_schools is not None:
            claim_schools(every)
        _admin_of(conn, prog, rules, records, writer, every)
    run = CreditEvaluationRun
    conn.execute(update(run).where(run.id == run_id).values(
        evaluated=run.evaluated + pc["evaluated"], changed=run.changed + pc["changed"],
        passed=run.passed + counts.passed, failed=run.failed + counts.failed, finished_at=utcnow()))
    return {"evaluated": pc["evaluated"], "changed": pc["changed"], "passed": counts.passed,
            "failed": counts.failed, "withdrawn": counts.withdrawn}


def known_programmes(store: Store, settings: Any) -> list[str]:
    """The programmes `credits evaluate` evaluates (those of the store with a rule file)."""
    return _programmes(store, settings, None)
