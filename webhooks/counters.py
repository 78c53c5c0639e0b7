"""Receiver outcome counters kept in the store, so `intake status` sees every worker's counts."""

from __future__ import annotations

from sqlalchemy import Executable, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from creditbridge.store import Store
from creditbridge.store.models.intake import IntakeCounter


def bump_statement(store: Store, reason: str, by: int = 1) -> Executable:
    """The upsert adding `by` to a reason's count; run it inside another transaction to count atomically."""
    insert = pg_insert if store.is_postgres else sqlite_insert
    stmt = insert(IntakeCounter).values(reason=reason, count=by)
    return stmt.on_conflict_do_update(index_elements=["reason"], set_={"count": IntakeCounter.count + by})


def bump(store: Store, reason: str, by: int = 1) -> None:
    with store.session() as s:
        s.execute(bump_statement(store, reason, by))


def read_all(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {r: c for r, c in s.execute(select(IntakeCounter.reason, IntakeCounter.count))}
