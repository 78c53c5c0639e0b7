"""The XLSX a person opens after a sync: summary, errors (row, column, reason) and the plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font

from creditbridge.records.cells import xlsx_row
from creditbridge.records.outfiles import write_file
from creditbridge.sync.outcome import COUNT_KEYS, SyncOutcome

_BOLD = Font(bold=True)


def _header(ws: object, names: list[str]) -> list[Cell]:  # WriteOnlyCell is a function making a Cell
    cells = []
    for n in names:
        c = WriteOnlyCell(ws, value=n)  # type: ignore[arg-type]
        c.font = _BOLD
        cells.append(c)
    return cells


def report_path(report_dir: str | Path, outcome: SyncOutcome, when: datetime | None = None) -> Path:
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(report_dir) / f"sync-{outcome.run_id:06d}-{outcome.kind}-{stamp}.xlsx"


def write_report(outcome: SyncOutcome, path: Path, *, started_at: datetime | None = None,
                 finished_at: datetime | None = None) -> Path:
    """Write the run's workbook (streaming: the plan sheet of a million-row roster never sits in cells), only
    into path's directory and atomically (records.outfiles: OutputFileError when it cannot be written)."""
    return write_file(path.parent, path.name, lambda fh: _save(outcome, fh, started_at, finished_at))


def _save(outcome: SyncOutcome, fh: BinaryIO, started_at: datetime | None, finished_at: datetime | None) -> None:
    wb = Workbook(write_only=True)
    summary = wb.create_sheet("summary")
    summary.column_dimensions["A"].width = 26
    summary.column_dimensions["B"].width = 60
    summary.append(_header(summary, ["item", "value"]))
    rows: list[tuple[str, object]] = [
        ("run id", outcome.run_id), ("kind", outcome.kind), ("file", outcome.file),
        ("programme", outcome.programme), ("dry run", "yes" if outcome.dry_run else "no"),
        ("outcome", outcome.outcome),
        ("started (UTC)", started_at.strftime("%Y-%m-%d %H:%M:%S") if started_at else ""),
        ("finished (UTC)", finished_at.strftime("%Y-%m-%d %H:%M:%S") if finished_at else ""),
    ]
    rows += [(k, v) for k, v in outcome.counts().items() if k in COUNT_KEYS]
    rows.append(("errors", len(outcome.errors) + outcome.errors_omitted))
    rows += [(f"planned {k}", v) for k, v in sorted(outcome.plan_counts.items())]
    if outcome.aborted:
        rows.append(("aborted because", outcome.aborted))
    rows += [("note", n) for n in outcome.notes]
    for r in rows:
        summary.append(xlsx_row(summary, r))

    errors = wb.create_sheet("errors")
    errors.column_dimensions["C"].width = 90
    errors.append(_header(errors, ["row", "column", "reason"]))
    for e in outcome.errors:
        errors.append(xlsx_row(errors, [e.row, e.column, e.reason]))
    if outcome.errors_omitted:
        errors.append([None, "", f"… and {outcome.errors_omitted} more errors, not listed (limits.max_errors)"])

    plan = wb.create_sheet("plan")
    plan.append(_header(plan, ["action", "row", "who", "name", "detail", "result"]))
    for p in outcome.plan:
        plan.append(xlsx_row(plan, [p.action, p.row, p.who, p.name, p.detail, p.result]))
    wb.save(fh)
