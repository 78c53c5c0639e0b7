"""The one internal event every intake path produces (webhook, reconciliation, import)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from creditbridge.records.id_number import validate_id_number


class RecordKind(StrEnum):
    course = "course"
    activity = "activity"
    time = "time"
    score = "score"
    revocation = "revocation"


class LearningRecord(BaseModel):
    """See DESIGN.md, "Learning record". `source` is unique per fact and is what dedupes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str
    programme: str = Field(min_length=1)
    course: str = Field(min_length=1)
    activity: str | None = None
    kind: RecordKind
    hours: float | None = Field(default=None, ge=0)
    minutes: float | None = Field(default=None, ge=0)
    score: float | None = None
    passed: bool | None = None
    occurred_at: datetime
    source: str = Field(min_length=1, max_length=255)

    @field_validator("teacher")
    @classmethod
    def _teacher_is_id_number(cls, v: str) -> str:
        return validate_id_number(v)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset, e.g. 2022-09-01T10:00:00+08:00")
        return v
