"""The XLSX a person opens after a sync: summary, errors (row, column, reason) and the plan, its sheet names and
labels in the report's language (setting report.language, creditbridge.i18n). The values (actions, codes, the
run's outcome) are the same codes `--json` prints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font

from creditbridge import i18n
from creditbridge.i18n import Words
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
                 finished_at: datetime | None = None, language: str = i18n.DEFAULT_LANGUAGE) -> Path:
    """Write the run's workbook (streaming: the plan sheet of a million-row roster never sits in cells), only
    into path's directory and atomically (records.outfiles: OutputFileError when it cannot be written)."""
    w = i18n.words(language)
    return write_file(path.parent, path.name, lambda fh: _save(outcome, fh, started_at, finished_at, w))


def _save(outcome: SyncOutcome, fh: BinaryIO, started_at: datetime | None, finished_at: datetime | None,
          w: Words) -> None:
    wb = Workbook(write_only=True)
    summary = wb.create_sheet(w("sync.sheet.summary"))
    summary.column_dimensions["A"].width = 26
    summary.column_dimensions["B"].width = 60
    summary.append(_header(summary, [w("sync.item"), w("sync.value")]))
    rows: list[tuple[str, object]] = [
        (w("sync.run_id"), outcome.run_id), (w("sync.kind"), outcome.kind), (w("sync.file"), outcome.file),
        (w("sync.programme"), outcome.programme), (w("sync.dry_run"), w("yes") if outcome.dry_run else w("no")),
        (w("sync.outcome"), outcome.outcome),
        (w("sync.started"), started_at.strftime("%Y-%m-%d %H:%M:%S") if started_at else ""),
        (w("sync.finished"), finished_at.strftime("%Y-%m-%d %H:%M:%S") if finished_at else ""),
    ]
    rows += [(w(f"sync.count.{k}"), v) for k, v in outcome.counts().items() if k in COUNT_KEYS]
    rows.append((w("sync.errors"), len(outcome.errors) + outcome.errors_omitted))
    rows += [(w("sync.planned", action=k), v) for k, v in sorted(outcome.plan_counts.items())]
    if outcome.aborted:
        rows.append((w("sync.aborted"), outcome.aborted))
    rows += [(w("sync.note"), n) for n in outcome.notes]
    for r in rows:
        summary.append(xlsx_row(summary, r))

    errors = wb.create_sheet(w("sync.sheet.errors"))
    errors.column_dimensions["C"].width = 90
    errors.append(_header(errors, [w("sync.row"), w("sync.column"), w("sync.reason")]))
    for e in outcome.errors:
        errors.append(xlsx_row(errors, [e.row, e.column, e.reason]))
    if outcome.errors_omitted:
        errors.append([None, "", w("sync.more_errors", n=outcome.errors_omitted)])

    plan = wb.create_sheet(w("sync.sheet.plan"))
    plan.append(_header(plan, [w(f"sync.{k}") for k in ("action", "row", "who", "name", "detail", "result")]))
    for p in outcome.plan:
        plan.append(xlsx_row(plan, [p.action, p.row, p.who, p.name, p.detail, p.result]))
    wb.save(fh)
