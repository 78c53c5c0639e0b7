"""Receiver outcome counters kept in the store, so `intake status` sees every worker's counts."""

from __future__ import annotations

from sqlalchemy import Executable, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from creditbridge.store import Store
from creditbridge.store.models.intake import IntakeCounter

# Counted outcomes of processing, not of receiving: deliveries stored and acknowledged that make no learning
# record (e.g. a course-total grade). Not rejections.
NOT_CREDITABLE_PREFIX = "not_creditable_"


def bump_statement(store: Store, reason: str, by: int = 1) -> Executable:
    """The upsert adding `by` to a reason's count; run it inside another transaction to count atomically."""
    return _upsert(store.is_postgres, reason, by)


def bump_in(s: Session, reason: str, by: int = 1) -> None:
    """Count inside the caller's transaction, so the count commits or rolls back with what it counts."""
    s.execute(_upsert(s.get_bind().dialect.name == "postgresql", reason, by))


def _upsert(postgres: bool, reason: str, by: int) -> Executable:
    insert = pg_insert if postgres else sqlite_insert
    stmt = insert(IntakeCounter).values(reason=reason, count=by)
    return stmt.on_conflict_do_update(index_elements=["reason"], set_={"count": IntakeCounter.count + by})


def split_outcomes(counters: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(rejections by reason, not-creditable deliveries by reason) out of all counters; accepted and duplicate
    are neither."""
    rejected = {k: v for k, v in counters.items()
                if k not in ("duplicate", "accepted") and not k.startswith(NOT_CREDITABLE_PREFIX)}
    not_creditable = {k.removeprefix(NOT_CREDITABLE_PREFIX): v for k, v in counters.items()
                      if k.startswith(NOT_CREDITABLE_PREFIX)}
    return rejected, not_creditable


def bump(store: Store, reason: str, by: int = 1) -> None:
    with store.session() as s:
        s.execute(bump_statement(store, reason, by))


def read_all(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {r: c for r, c in s.execute(select(IntakeCounter.reason, IntakeCounter.count))}
