"""The registry outbox: one row per version of a credit record to push, and its audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow

SUBMISSION_STATES = ("pending", "sent", "acknowledged", "rejected", "superseded", "voided")


class RegistrySubmission(Base):
    """A credit record version on its way to the registry. `idempotency_key` is a function of
    (programme, role, teacher, year, version) alone, so a resend after any crash carries the same key."""

    __tablename__ = "registry_submission"
    __table_args__ = (
        UniqueConstraint("programme", "teacher", "role", "year", "version"),
        UniqueConstraint("idempotency_key"),
        Index("ix_registry_submission_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(64))  # ID number (or host/school key of a role result)
    role: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(10), default="submit")  # submit | void
    idempotency_key: Mapped[str] = mapped_column(String(64))
    result_hash: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    registry_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("registry_submission.id"))
    target: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class RegistryAudit(Base):
    """Every state change of a submission, with why: the trail a registrar asks for."""

    __tablename__ = "registry_audit"
    __table_args__ = (Index("ix_registry_audit_submission_id", "submission_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("registry_submission.id"))
    event: Mapped[str] = mapped_column(String(30))  # created | sent | acknowledged | rejected | ...
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
