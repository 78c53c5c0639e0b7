"""The XLSX a person opens after a sync: summary, errors (row, column, reason) and the plan, its sheet names and
labels in the report's language (setting report.language, creditbridge.i18n). The values (actions, codes, the
run's outcome) are the same codes `--json` prints.

A province's first sync plans a million actions; openpyxl writes about 10,000 rows a second, so a plan sheet
of the 200,000 lines a run keeps (sync.roster.PLAN_LINES_MAX) was two thirds of a 1,000,000-teacher dry
run's CPU. The plan sheet therefore lists the first PLAN_SHEET_ROWS lines; a longer plan is written whole
as a CSV beside the workbook (the csv module: some 40 times cheaper a row), same columns, UTF-8 with a
byte order mark so Excel and WPS show the Chinese, its cells through records/cells.py like every CSV we
write, and named in the summary and the plan sheet. Both files are written atomically into the report
directory, the CSV first.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font

from creditbridge import i18n
from creditbridge.i18n import Words
from creditbridge.records.cells import csv_row, xlsx_row
from creditbridge.records.outfiles import write_file
from creditbridge.sync.outcome import COUNT_KEYS, SyncOutcome

_BOLD = Font(bold=True)
# Lines of the plan sheet; a longer plan goes whole into the CSV beside the workbook.
PLAN_SHEET_ROWS = 1000
PLAN_COLUMNS = ["action", "row", "who", "name", "detail", "result"]


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


def plan_csv_path(path: Path) -> Path:
    """The full plan's CSV beside the report `path` (written when the plan is longer than the sheet)."""
    return path.with_name(f"{path.stem}-plan.csv")


def write_report(outcome: SyncOutcome, path: Path, *, started_at: datetime | None = None,
                 finished_at: datetime | None = None, language: str = i18n.DEFAULT_LANGUAGE) -> Path:
    """Write the run's workbook (streaming: openpyxl's write-only mode), and the plan as CSV beside it when the
    plan is longer than PLAN_SHEET_ROWS, only into path's directory and atomically (records.outfiles:
    OutputFileError when it cannot be written)."""
    w = i18n.words(language)
    plan_csv = None
    if len(outcome.plan) > PLAN_SHEET_ROWS:
        plan_csv = write_file(path.parent, plan_csv_path(path).name, lambda fh: _save_plan_csv(outcome, fh, w)).name
    try:
        return write_file(path.parent, path.name, lambda fh: _save(outcome, fh, started_at, finished_at, w, plan_csv))
    except BaseException:
        if plan_csv is not None:  # the pair or nothing: a lone plan CSV names a workbook that is not there
            (path.parent / plan_csv).unlink(missing_ok=True)
        raise


def _save_plan_csv(outcome: SyncOutcome, fh: BinaryIO, w: Words) -> None:
    # Written into memory and encoded once: 200,000 rows written through a TextIOWrapper are encoded a row at a
    # time (a fifth of this step). The plan holds at most sync.roster.PLAN_LINES_MAX lines (~15 MB of text).
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([w(f"sync.{k}") for k in PLAN_COLUMNS])
    plan = outcome.plan
    # Column by column through csv_row: one call per column rather than per line (200,000 lines of a province).
    columns = [csv_row(list(map(attrgetter(name), plan))) for name in PLAN_COLUMNS]
    writer.writerows(zip(*columns, strict=True))
    fh.write(text.getvalue().encode("utf-8-sig"))


def _save(outcome: SyncOutcome, fh: BinaryIO, started_at: datetime | None, finished_at: datetime | None,
          w: Words, plan_csv: str | None) -> None:
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
    if plan_csv is not None:
        link = WriteOnlyCell(summary, value=plan_csv)
        link.hyperlink = plan_csv  # relative: opens the CSV beside the workbook
        link.style = "Hyperlink"
        rows.append((w("sync.plan_csv"), link))
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
    plan.append(_header(plan, [w(f"sync.{k}") for k in PLAN_COLUMNS]))
    for p in outcome.plan[:PLAN_SHEET_ROWS]:
        plan.append(xlsx_row(plan, [p.action, p.row, p.who, p.name, p.detail, p.result]))
    if plan_csv is not None:
        plan.append(xlsx_row(plan, ["", None, "", w("sync.plan_more", shown=f"{PLAN_SHEET_ROWS:,}",
                                                    total=f"{len(outcome.plan):,}", file=plan_csv)]))
    wb.save(fh)
