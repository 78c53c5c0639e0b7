"""Typed rows that flow from the readers through validation into the plan and on to apply.

Roster rows are NamedTuples rather than pydantic models: a province sends a million of them per run
and a tuple is built in a fraction of the time and memory. The boundary models (RowError, the
catalog and topic rows, which are few) are pydantic.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from enum import StrEnum
from hashlib import blake2b as _blake2b
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

# Separator for hashed fields: cannot occur in a cell a spreadsheet exports as text.
_SEP = "\x1f"


class RowError(BaseModel):
    """One problem with one cell (or one whole row) of an input file.

    `row` is the row number a spreadsheet shows (the header is row 1; in a YAML catalog, the line where
    the item starts). `column` is the header as written in the file (e.g. "身份证号"), or "" when the
    problem concerns the whole row. `reason` is a readable English sentence; ID numbers in it are masked.
    """

    model_config = ConfigDict(frozen=True)

    row: int
    column: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


class InvalidRow(NamedTuple):
    """A row that failed validation: nothing of it is planned or applied."""

    row: int
    errors: list[RowError]
    # The normalised ID number when that cell itself was valid (so duplicates can still be found).
    id_number: str | None = None


class RosterRow(NamedTuple):
    """One validated teacher row of a roster export, normalised.

    stage: high | middle | primary | kindergarten; subject: a vocabulary code (None in kindergarten);
    status: "active" (在职 …) or "left" (离职, 调出, 退休 …). `row` is the spreadsheet row number and is
    NOT part of `row_hash`, so moving a teacher to another line of the export changes nothing.
    """

    row: int
    id_number: str
    name: str
    school_code: str
    school_name: str
    county: str
    city: str
    stage: str
    subject: str | None
    rural: bool
    status: str
    phone: str | None = None
    email: str | None = None
    teacher_code: str | None = None
    # Hash of the row as the export wrote it, set by the readers' validation (validation.RosterValidator).
    # A row changed with _replace() must drop it: row._replace(name=..., source_hash=None).
    source_hash: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def row_hash(self) -> str:
        """Stable hash of the row (never of its row number): 32 hex characters.

        Apply stores it in Teacher.row_hash once Moodle has the row; an equal hash next run means the
        teacher is unchanged. For a row read from a file it is the hash of the export's own text of the
        roster fields (so a re-sync recognises an unchanged row before validating it); for a row built in
        code, roster_hash of its normalised values.
        """
        return self.source_hash or roster_hash(self)


def roster_hash(r: RosterRow) -> str:
    # One f-string over the tuple's slots is the cheapest stable text of a row (a million per run);
    # None and booleans render as "None"/"True"/"False", which no valid cell can be confused with.
    text = (f"{r[1]}\x1f{r[2]}\x1f{r[3]}\x1f{r[4]}\x1f{r[5]}\x1f{r[6]}\x1f{r[7]}\x1f{r[8]}\x1f{r[9]}\x1f{r[10]}"
            f"\x1f{r[11]}\x1f{r[12]}\x1f{r[13]}")
    return _blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class TeacherState(NamedTuple):
    """What the store knows of a teacher, as far as planning needs it.

    status is the store's: "active" or "suspended".
    """

    row_hash: str
    school_code: str
    county: str
    city: str
    status: str

    @property
    def active(self) -> bool:
        return self.status == "active"


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    TRANSFER = "transfer"
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    UNCHANGED = "unchanged"


class CatalogRow(BaseModel):
    """One validated catalog course. stage and subject are vocabulary codes; hours a Decimal."""

    model_config = ConfigDict(frozen=True)

    row: int
    code: str
    title: str
    kind: str  # lesson_case | required | elective | task
    topic: str | None = None
    mode: str = "online"  # online | offline
    hours: Decimal = Decimal(0)
    stage: str | None = None
    subject: str | None = None
    city: str | None = None
    recorded_by: str | None = None

    @property
    def row_hash(self) -> str:
        """Stable hash of the course fields (not the row number), for CatalogCourse.row_hash."""
        text = _SEP.join((
            self.code, self.title, self.kind, self.topic or "", self.mode, format(self.hours.normalize(), "f"),
            self.stage or "", self.subject or "", self.city or "", self.recorded_by or "",
        ))
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class TopicRow(BaseModel):
    """One school's choice of one elective topic."""

    model_config = ConfigDict(frozen=True)

    row: int
    school_code: str
    topic: str
