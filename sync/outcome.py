"""What a sync run did: the counts and errors `--json` prints, plus what the report lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from creditbridge import CreditbridgeError
from creditbridge.records.id_number import mask_id_numbers

# The keys `sync ... --json` prints, in this order (issue 4's contract), then `report`.
COUNT_KEYS = ("created", "updated", "transferred", "suspended", "reactivated", "unchanged",
              "lesson_cases_assigned", "held", "lms_calls")


class SyncFileError(CreditbridgeError):
    """The input file cannot be read at all (missing, not a spreadsheet, no header): nothing was synced."""


class SyncAborted(CreditbridgeError):
    """Moodle failed as a whole mid-run (unreachable, token refused). What went through is recorded."""


class Progress(Protocol):
    """Told about long work: `stage` names it, `done` of `total` items so far (total 0 when unknown)."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


def no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class ErrorEntry:
    row: int | None
    column: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


@dataclass(slots=True)  # a province's plan holds 200,000 of them
class PlanLine:
    """One line of the report's plan sheet. `who` is a masked ID number or a course/school code."""

    action: str
    row: int | None
    who: str
    name: str = ""
    detail: str = ""
    result: str = "planned"


@dataclass
class SyncOutcome:
    kind: str
    file: str
    programme: str
    dry_run: bool = False
    run_id: int = 0
    created: int = 0
    updated: int = 0
    transferred: int = 0
    suspended: int = 0
    reactivated: int = 0
    unchanged: int = 0
    lesson_cases_assigned: int = 0
    held: int = 0
    lms_calls: int = 0
    errors: list[ErrorEntry] = field(default_factory=list)
    report: str | None = None
    plan_counts: dict[str, int] = field(default_factory=dict)
    plan: list[PlanLine] = field(default_factory=list)
    # Things a person should know that are not errors of a row (e.g. a lesson-case pool too small).
    notes: list[str] = field(default_factory=list)
    aborted: str | None = None
    # Errors kept in detail (limits.max_errors); the others are only counted, so a file of a million bad rows
    # costs a bounded list and a bounded output.
    max_errors: int = 1000
    errors_omitted: int = 0

    def error(self, row: int | None, column: str, reason: str) -> None:
        if len(self.errors) < self.max_errors:
            # A reason may quote Moodle or the database (a unique key's value): it reaches the report and --json.
            self.errors.append(ErrorEntry(row, column, mask_id_numbers(reason)))
        else:
            self.errors_omitted += 1

    @property
    def outcome(self) -> str:
        if self.aborted:
            return "aborted"
        return "partial" if self.errors else "ok"

    def counts(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in COUNT_KEYS}

    def as_json(self) -> dict[str, Any]:
        return {**self.counts(), "run_id": self.run_id, "errors": [e.as_json() for e in self.errors],
                "errors_omitted": self.errors_omitted, "report": self.report, "notes": list(self.notes)}

