"""Scheduler table: the history of job runs (one row per job and trigger time), which the scheduler resumes from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow

RUN_OUTCOMES = ("running", "ok", "skipped", "failed", "interrupted")


class JobRun(Base):
    """One execution of a job for one trigger time. The row is inserted (claimed) before the job starts;
    the unique (job_id, scheduled_at) makes a second scheduler's claim of the same trigger fail, so a
    trigger runs at most once however many schedulers are (mistakenly) alive."""

    __tablename__ = "scheduler_job_run"
    __table_args__ = (UniqueConstraint("job_id", "scheduled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(60))
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime)  # the trigger time (UTC)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(20), default="running")  # RUN_OUTCOMES
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    instance: Mapped[str] = mapped_column(String(200))  # host:pid of the scheduler that ran it
    manual: Mapped[bool] = mapped_column(default=False)  # `creditbridge scheduler --once`
