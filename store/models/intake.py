"""Intake tables: the durable webhook inbox and the events parked until a sync makes them resolvable."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow


class WebhookDelivery(Base):
    """One accepted delivery. `webhook_id` is unique: the insert that stores it is the insert that dedupes it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("webhook_id"), Index("ix_webhook_delivery_state", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict] = mapped_column(JSON)
    # pending -> processed | parked (parked ones go back to pending on replay)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ParkedEvent(Base):
    """A delivery that could not become a learning record yet (unknown user or course). Never dropped."""

    __tablename__ = "parked_event"
    __table_args__ = (UniqueConstraint("webhook_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    parked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_tried_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class IntakeCounter(Base):
    """Receiver outcomes by reason (accepted, duplicate, bad_signature, ...), shared by every worker."""

    __tablename__ = "intake_counter"

    reason: Mapped[str] = mapped_column(String(60), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
