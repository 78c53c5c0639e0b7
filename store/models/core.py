"""Tables every flow reads: teachers, the catalog, schools' topic choices, lesson-case assignments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow


class Teacher(Base):
    """One teacher in one programme, as the latest roster says. Leavers stay, with status 'suspended'."""

    __tablename__ = "teacher"
    __table_args__ = (
        UniqueConstraint("programme", "id_number"),
        Index("ix_teacher_moodle_user_id", "moodle_user_id"),
        Index("ix_teacher_programme_school", "programme", "school_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(100))
    school_code: Mapped[str] = mapped_column(String(40))
    school_name: Mapped[str] = mapped_column(String(200))
    county: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(40))
    rural: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | suspended
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    teacher_code: Mapped[str | None] = mapped_column(String(60))
    username: Mapped[str | None] = mapped_column(String(100))
    moodle_user_id: Mapped[int | None] = mapped_column(Integer)
    # Hash of the roster fields: equal hashes mean nothing to plan for this teacher.
    row_hash: Mapped[str | None] = mapped_column(String(64))
    # Hash of what Moodle was last told; differs from row_hash while an apply is unfinished.
    applied_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class CatalogCourse(Base):
    __tablename__ = "catalog_course"
    __table_args__ = (UniqueConstraint("programme", "code"), Index("ix_catalog_course_moodle", "moodle_course_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # lesson_case | required | elective | task
    topic: Mapped[str | None] = mapped_column(String(60))
    mode: Mapped[str] = mapped_column(String(10), default="online")  # online | offline
    hours: Mapped[Decimal] = mapped_column(Numeric(8, 2), default=Decimal(0))
    stage: Mapped[str | None] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str | None] = mapped_column(String(100))
    recorded_by: Mapped[str | None] = mapped_column(String(18))
    moodle_course_id: Mapped[int | None] = mapped_column(Integer)
    row_hash: Mapped[str | None] = mapped_column(String(64))
    applied_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SchoolTopic(Base):
    """An elective topic a school chose for its teachers."""

    __tablename__ = "school_topic"
    __table_args__ = (UniqueConstraint("programme", "school_code", "topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    school_code: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(60))


class LessonCaseAssignment(Base):
    """A lesson case pushed to a teacher. Rows are never reshuffled once made."""

    __tablename__ = "lesson_case_assignment"
    __table_args__ = (
        UniqueConstraint("programme", "teacher", "course"),
        Index("ix_lesson_case_assignment_course", "programme", "course"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(18))  # ID number
    course: Mapped[str] = mapped_column(String(100))  # catalog code
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)


class LearningRecordRow(Base):
    """A stored learning record (records.LearningRecord). `source` is unique: the same fact seen by a
    webhook and by reconciliation is one row. A revocation withdraws the row it revokes (withdrawn_by)
    and is stored itself for the audit trail."""

    __tablename__ = "learning_record"
    __table_args__ = (
        UniqueConstraint("source"),
        Index("ix_learning_record_programme_teacher", "programme", "teacher"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(18))  # ID number
    course: Mapped[str] = mapped_column(String(100))  # catalog code
    activity: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    hours: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    minutes: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    score: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str] = mapped_column(String(20), default="webhook")  # webhook | reconcile | import
    withdrawn_by: Mapped[str | None] = mapped_column(String(255))  # source of the revoking record
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
