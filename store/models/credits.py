"""Credit results (one per programme, person and role) and the log of evaluation runs and changes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from creditbridge.store.models.base import Base, UtcDateTime, utcnow


class CreditResult(Base):
    """The latest evaluation of one person. The outbox reads these columns by name (briefing contract 3).
    `teacher` is the ID number, or the school code for the school_admin role."""

    __tablename__ = "credit_result"
    __table_args__ = (UniqueConstraint("programme", "teacher", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))  # teacher | workshop_host | school_admin
    year: Mapped[int] = mapped_column(Integer)
    hours: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    credits: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    points: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    passed: Mapped[bool] = mapped_column(Boolean)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    reasons_zh: Mapped[list[str]] = mapped_column(JSON)
    rule_version: Mapped[str] = mapped_column(String(40))
    rule_hash: Mapped[str] = mapped_column(String(64))
    # sha256 of what a registry push carries (role, year, hours, credits, points, passed)
    result_hash: Mapped[str] = mapped_column(String(64))
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # fingerprint of everything the result was computed from (rules, catalog, the person, their school's topics,
    # assignments, records): an unchanged fingerprint lets a re-evaluation skip the person (migration 0007)
    input_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CreditEvaluationRun(Base):
    """One `credits evaluate` over the store: which rule file it used and what it changed."""

    __tablename__ = "credit_evaluation_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    rule_version: Mapped[str] = mapped_column(String(40))
    rule_hash: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # "all" (every teacher of the programme) or "incremental" (the marked ones); NULL: a run before 0008 (all)
    mode: Mapped[str | None] = mapped_column(String(20))
    # EVALUATOR_VERSION of mappings/fingerprint.py: a new one makes the next incremental run a full one
    evaluator_version: Mapped[str | None] = mapped_column(String(20))


class CreditResultChange(Base):
    """A result whose pushed outcome changed in a run: the values before and after, and whether the rule
    file changed in between (so a new rule file shows which results it moved, and why)."""

    __tablename__ = "credit_result_change"
    __table_args__ = (Index("ix_credit_result_change_run", "run_id"),
                      Index("ix_credit_result_change_person", "programme", "teacher", "role"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None: a first result
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CreditMark(Base):
    """Whose inputs changed since their result was computed: an append-only log written by database triggers
    (migration 0008) on learning_record, lesson_case_assignment, teacher, school_topic and catalog_course.
    `teacher` set: that person is evaluated again (`school`, when set, is a school whose admin result must be
    recomputed: the old or new school of a transfer). `teacher` NULL and `school` set: every teacher of that
    school (a topic change). Both NULL: the whole programme (a catalog change). An evaluation deletes exactly
    the rows it read before reading the inputs, so a mark committed during it stays for the next one."""

    __tablename__ = "credit_mark"
    __table_args__ = (Index("ix_credit_mark_programme_teacher", "programme", "teacher"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[str] = mapped_column(String(40))
    teacher: Mapped[str | None] = mapped_column(String(18))
    school: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=text("CURRENT_TIMESTAMP"))
