"""The credit record a submission carries (PROGRAMMES.md, "A credit-registry record"), made from a
credit_result row, the teacher's roster row and the programme's rule file."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from creditbridge.programmes import ProgrammeFacts

_KEY_NS = uuid.UUID("3d0f4a7c-95a2-4b0e-8a51-2f6c1de0b4a9")
ROLE_CATEGORY = {"teacher": "teacher_training", "workshop_host": "workshop_host", "school_admin": "school_admin"}


def idempotency_key(programme: str, role: str, teacher: str, year: int, version: int) -> str:
    """Stable per teacher, programme, year and version: every resend of one version carries it."""
    return str(uuid.uuid5(_KEY_NS, f"{programme}/{role}/{teacher}/{year}/v{version}"))


def _num(v: Any) -> float | None:
    return None if v is None else float(Decimal(v))


def build_record(result: Any, teacher: Any | None, prog: ProgrammeFacts, version: int, provider: str) -> dict[str, Any]:
    """`result`: a credit_result row; `teacher`: the matching teacher row or None. The record's dates: 1 January
    of the result's year to the programme's deadline (31 December of that year for a programme with no rule
    file, documented; never another programme's)."""
    year = int(result.year)
    end = prog.deadline_in(year)
    evaluated = result.evaluated_at
    if isinstance(evaluated, datetime) and evaluated.tzinfo is None:
        evaluated = evaluated.replace(tzinfo=UTC)  # SQLite hands back naive datetimes; the store writes UTC
    return {
        "id_type": "resident_id",
        "id_number": result.teacher,
        "name": teacher.name if teacher is not None else "",
        "school_code": teacher.school_code if teacher is not None else None,
        "school_name": teacher.school_name if teacher is not None else None,
        "city": teacher.city if teacher is not None else None,
        "county": teacher.county if teacher is not None else None,
        "stage": teacher.stage if teacher is not None else None,
        "subject": teacher.subject if teacher is not None else None,
        "programme_code": prog.code,
        "programme_name": prog.name,
        "year": year,
        "version": version,
        "role": result.role,
        "level": "20",  # provincial programme (national code table)
        "mode": "3",  # online
        "category": ROLE_CATEGORY.get(result.role, result.role),
        "hours": _num(result.hours),
        "credits": _num(result.credits),
        "score": _num(result.points),
        "result": "passed" if result.passed else "failed",
        "provider": provider,
        "start_date": date(year, 1, 1).isoformat(),
        "end_date": end.isoformat() if end else None,
        "evaluated_at": evaluated.isoformat() if isinstance(evaluated, datetime) else None,
        "rule_version": result.rule_version,
    }
