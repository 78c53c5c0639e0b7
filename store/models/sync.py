"""Sync tables: the run log, and what sync knows it has put into Moodle.

Moodle is the truth about what exists there; these rows are written only after Moodle accepted a
batch, so a re-run compares the files with them and sends nothing when nothing changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow


class SyncRun(Base):
    """One `sync catalog|topics|roster` run: what it planned, what it did, where its report is."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # catalog | topics | roster
    programme: Mapped[str] = mapped_column(String(40))
    file: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    delta: Mapped[bool] = mapped_column(Boolean, default=False)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    # running -> ok (every record applied) | partial (some records refused) | aborted (fatal error)
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    # Planned actions by kind (create, update, ...), as counted before applying.
    plan_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    # The SyncOutcome counts after applying (created, updated, ..., lms_calls).
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    report_path: Mapped[str | None] = mapped_column(Text)


class MoodleRef(Base):
    """A Moodle cohort or category sync created (or found) by its idnumber, with its Moodle id."""

    __tablename__ = "sync_moodle_ref"
    __table_args__ = (UniqueConstraint("kind", "idnumber"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # cohort | category
    idnumber: Mapped[str] = mapped_column(String(255))
    moodle_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))


class CohortMember(Base):
    """A teacher sync put into a cohort (by cohort idnumber); the diff against it drives transfers."""

    __tablename__ = "sync_cohort_member"
    __table_args__ = (UniqueConstraint("programme", "teacher", "cohort"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(18))  # ID number
    cohort: Mapped[str] = mapped_column(String(255))  # cohort idnumber


class Enrolment(Base):
    """A teacher sync enrolled in a catalog course (manual enrolment, student role)."""

    __tablename__ = "sync_enrolment"
    __table_args__ = (UniqueConstraint("programme", "teacher", "course"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(18))  # ID number
    course: Mapped[str] = mapped_column(String(100))  # catalog code
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SyncState(Base):
    """Small facts between runs, e.g. the fingerprint of the catalog and topics the last full enrolment pass saw."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
