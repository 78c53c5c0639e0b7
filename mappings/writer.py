"""The write path of an evaluation: compares results with the stored ones and writes only the differences.

A stored result is rewritten only when something in it changed; a change of what a registry push carries
(result_hash) is logged with the values before and after. Rows go straight to the DBAPI in the dialect's own
SQL: COPY on PostgreSQL (store/copy.py), executemany on SQLite, so a million results cost no per-row
parameter processing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, update
from sqlalchemy.sql.expression import cast
from sqlalchemy.types import Text

from creditbridge.mappings.evaluate import Result
from creditbridge.mappings.read import as_float
from creditbridge.programmes import Programme
from creditbridge.store.copy import copy_rows
from creditbridge.store.models.base import UtcDateTime, utcnow
from creditbridge.store.models.credits import CreditResult, CreditResultChange

CR = CreditResult.__table__


@dataclass
class Counts:
    """What a writer did with the results it was given (a key range's, a run's)."""

    evaluated: int = 0
    changed: int = 0  # pushed outcome new or different (result_hash), or withdrawn
    new: int = 0
    updated: int = 0  # stored row rewritten (reasons, rule version, ...) without a pushed change
    withdrawn: int = 0
    passed: int = 0
    failed: int = 0

    def add(self, other: Counts) -> None:
        """Add another writer's counts (a worker process's key range) to these."""
        for f in fields(Counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _pushed(row: Any) -> dict[str, Any]:
    return {"hours": as_float(row["hours"]), "credits": as_float(row["credits"]), "points": as_float(row["points"]),
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


def time_to_db(dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy binds for a UtcDateTime on this dialect (SQLite: its own text form), for the values handed
    to the DBAPI directly (this module's rows, the record queries' window bounds): the same text as every ORM
    write, so stored times compare as text."""
    return UtcDateTime().dialect_impl(dialect).bind_processor(dialect)


def _same_content(old: Any, result_hash: str, prog: Programme, texts: tuple[str, str, str]) -> bool:
    return (old.result_hash == result_hash and old.rule_hash == prog.hash and old.rule_version == prog.version
            and old.components == texts[0] and old.reasons == texts[1] and old.reasons_zh == texts[2])


class ResultWriter:
    """Compares a batch of results with the stored ones and writes only the differences."""

    def __init__(self, conn: Connection, prog: Programme, run_id: int, counts: Counts, pc: dict[str, int]) -> None:
        self.conn, self.prog, self.run_id, self.counts, self.pc = conn, prog, run_id, counts, pc
        self.insert_sql = _insert_sql(conn.dialect)
        self.update_sql = _update_sql(conn.dialect)
        self.copy = conn.dialect.name == "postgresql"
        self.kept: set[tuple[str, str]] = set()
        self.to_db = time_to_db(conn.dialect)

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
