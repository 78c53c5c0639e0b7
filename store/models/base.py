"""Declarative base with a naming convention, so migrations name constraints the same on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import DateTime, MetaData, Table
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out; SQLite would otherwise hand back naive datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def age_seconds(at: datetime | None, now: datetime) -> float | None:
    """Seconds from `at` to `now` (never negative: clocks of two hosts), to 0.1 s; None when there is no `at`.
    The status views' "age of the oldest"."""
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Every model is mapped to one Table (no custom FromClause), so Core statements on `Model.__table__`
    # type-check; SQLAlchemy's own annotation is the wider FromClause.
    __table__: ClassVar[Table]
