"""Receiver outcome counters kept in the store, so `intake status` sees every worker's counts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from creditbridge.store import Store
from creditbridge.store.models.intake import IntakeCounter


def bump(store: Store, reason: str, by: int = 1) -> None:
    insert = pg_insert if store.is_postgres else sqlite_insert
    stmt = insert(IntakeCounter).values(reason=reason, count=by)
    stmt = stmt.on_conflict_do_update(index_elements=["reason"], set_={"count": IntakeCounter.count + by})
    with store.session() as s:
        s.execute(stmt)


def read_all(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {r: c for r, c in s.execute(select(IntakeCounter.reason, IntakeCounter.count))}
