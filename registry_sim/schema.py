"""What the simulated registry accepts: the batch envelope and one credit record (pydantic)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from creditbridge.records import IdNumberError, validate_id_number

KNOWN_PROGRAMMES = ("sd-2022", "sd-early", "jx-2018", "hf-2021-it2", "xh-2015")


class CreditRecord(BaseModel):
    """The fields a provincial credit record carries (PROGRAMMES.md, "A credit-registry record")."""

    model_config = ConfigDict(extra="allow")

    id_type: str = "resident_id"
    id_number: str
    name: str = Field(min_length=1, max_length=100)
    school_code: str | None = None
    school_name: str | None = None
    city: str | None = None
    county: str | None = None
    stage: str | None = None
    subject: str | None = None
    programme_code: str = Field(min_length=1)
    programme_name: str | None = None
    year: int = Field(ge=2000, le=2100)
    version: int = Field(ge=1)
    role: str = "teacher"
    level: str = "20"
    mode: str = "3"
    category: str | None = None
    hours: Decimal = Field(ge=0, le=1000)
    credits: Decimal = Field(ge=0, le=100)
    score: Decimal | None = Field(default=None, ge=0, le=1000)
    result: Literal["passed", "failed"]
    provider: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    remarks: str | None = None

    @field_validator("id_number")
    @classmethod
    def _check_digit(cls, v: str) -> str:
        try:
            return validate_id_number(v)
        except IdNumberError as e:
            raise ValueError(str(e)) from e

    @model_validator(mode="after")
    def _window(self) -> CreditRecord:
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError("start_date is after end_date")
        return self


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=8, max_length=100)
    action: Literal["submit", "void"] = "submit"
    supersedes: str | None = None
    record: dict


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[BatchItem] = Field(min_length=1, max_length=1000)
