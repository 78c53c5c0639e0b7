"""The import file the provincial platforms take: XLSX (openpyxl write-only, constant memory) or CSV.

Each batch becomes one file named by the batch's idempotency key, written to a temporary name and
renamed into place, so a resent batch rewrites the same file and a crash never leaves half a file
(records.outfiles: only into registry.export_dir, never through a symbolic link). Names and schools are
written as text, never as formulas (records.cells): a string cell in XLSX, OWASP's leading apostrophe
in CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from openpyxl import Workbook

from creditbridge.connector.registry.base import Outcome, RegistryTarget, Submission
from creditbridge.connector.registry.errors import RegistryConfigError
from creditbridge.connector.registry.rest import batch_key
from creditbridge.records.cells import csv_row, xlsx_row
from creditbridge.records.outfiles import OutputFileError, write_file
from creditbridge.settings.model import RegistrySettings

# (header as the provincial import templates print it, record field)
COLUMNS: list[tuple[str, str]] = [
    ("身份证号", "id_number"),
    ("姓名", "name"),
    ("学校代码", "school_code"),
    ("学校名称", "school_name"),
    ("项目名称", "programme_name"),
    ("项目编号", "programme_code"),
    ("年度", "year"),
    ("类别", "category"),
    ("学时", "hours"),
    ("学分", "credits"),
    ("考核结果", "result"),
    ("培训机构", "provider"),
    ("开始日期", "start_date"),
    ("结束日期", "end_date"),
    ("操作", "operation"),
    ("版本", "version"),
    ("备注", "remarks"),
]
HEADERS = [h for h, _ in COLUMNS]
RESULT_LABELS = {"passed": "合格", "failed": "不合格"}
OPERATION_LABELS = {"new": "新增", "correct": "更正", "void": "撤销"}


def row_of(s: Submission) -> list[Any]:
    r = dict(s.record)
    r["result"] = RESULT_LABELS.get(r.get("result", ""), r.get("result"))
    r["operation"] = OPERATION_LABELS["void" if s.action == "void" else ("correct" if s.supersedes else "new")]
    values = []
    for _, field in COLUMNS:
        v = r.get(field)
        # Numbers stay numbers in XLSX, so the platform's import does not trip on text cells.
        if field in ("hours", "credits") and v is not None:
            v = float(v)
        values.append(v)  # None: an empty cell in XLSX (skipped, not an empty string), "" in CSV
    return values


def write_import_file(rows: Iterable[Sequence[Any]], path: Path, fmt: str) -> int:
    """Write HEADERS then `rows` to `path` (atomically). Returns the number of data rows."""
    if fmt not in ("csv", "xlsx"):
        raise RegistryConfigError(f"registry.file_format must be xlsx or csv, got {fmt!r}")
    n = 0

    def save(fh: BinaryIO) -> None:
        nonlocal n
        if fmt == "csv":
            # UTF-8 with BOM: what Excel in China opens without garbling the Chinese headers.
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
            w = csv.writer(text)
            w.writerow(HEADERS)
            for row in rows:
                w.writerow(csv_row(row))
                n += 1
            text.flush()
            text.detach()  # the caller closes fh
        else:
            wb = Workbook(write_only=True)
            ws = wb.create_sheet("学分登记")
            ws.append(HEADERS)
            for row in rows:
                ws.append(xlsx_row(ws, row))
                n += 1
            wb.save(fh)

    write_file(path.parent, path.name, save, private=True)  # it holds full ID numbers
    return n


class FileTarget(RegistryTarget):
    """'Acknowledged' here means written to the import file; the upload to the platform is manual."""

    max_batch = 1_000_000

    def __init__(self, settings: RegistrySettings) -> None:
        super().__init__(settings)
        self.fmt = getattr(settings, "file_format", "xlsx")
        self.out_dir = Path(settings.export_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RegistryConfigError(f"cannot create registry.export_dir {settings.export_dir!r}: {e}") from e
        self.written: list[Path] = []

    def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        key = batch_key(batch)
        path = self.out_dir / f"credit-records-{key}.{self.fmt}"
        try:
            write_import_file((row_of(s) for s in batch), path, self.fmt)
        except OutputFileError as e:  # the export directory is the setting at fault; resending cannot help
            raise RegistryConfigError(f"registry.export_dir: {e}") from e
        self.written.append(path)
        return [Outcome(s.key, "acknowledged", registry_id=f"{path.name}#{i + 2}") for i, s in enumerate(batch)]
