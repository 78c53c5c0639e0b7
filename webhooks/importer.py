"""`creditbridge intake import FILE`: learning records from elsewhere.

- JSON lines (.jsonl / .json): one DESIGN.md learning record per line, validated with LearningRecord.
- XLSX: school-based activity scores given by workshop hosts; first sheet, header row, columns
  (English or Chinese header): teacher (身份证号), course (课程编号), activity (活动编号), score (成绩),
  hours (学时, optional), occurred_at (日期: a date/datetime cell or ISO text; Asia/Shanghai if no offset),
  source (来源, optional; default "import:xlsx:<teacher>:<course>:<activity>" so a re-import dedupes).
Bad lines/rows are reported with their number and field and the ID number masked; good ones are stored.
"""

from __future__ import annotations

import codecs
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from creditbridge import CreditbridgeError
from creditbridge.input_limits import bounded_lines
from creditbridge.readers.xlsx import XlsxReadError, first_sheet_rows
from creditbridge.records import LearningRecord, mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.webhooks.processing import apply_revocations, store_record

XLSX_COLUMNS = {"teacher": "身份证号", "course": "课程编号", "activity": "活动编号", "score": "成绩",
                "hours": "学时", "occurred_at": "日期", "source": "来源"}
REQUIRED_XLSX = ("teacher", "course", "activity", "score", "occurred_at")
LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class ImportFileError(CreditbridgeError):
    """The file as a whole cannot be read (format, header). Fix the file; a retry as-is fails the same way."""


def _errors(line: int, e: ValidationError) -> list[dict[str, Any]]:
    return [{"line": line, "field": ".".join(str(p) for p in err["loc"]) or "-",
             # Only the ID number inside is masked: the rest says what is wrong with the value.
             "reason": mask_id_numbers(err["msg"])}
            for err in e.errors(include_input=False)]


class _Errors(list[dict[str, Any]]):
    """The errors of one import: the first `limits.max_errors` in detail, the rest only counted (`omitted`),
    so 300,000 bad lines cost a bounded list and a bounded output."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap, self.omitted = cap, 0

    def add(self, errors: list[dict[str, Any]]) -> None:
        room = self.cap - len(self)
        self.extend(errors[:max(room, 0)])
        self.omitted += max(len(errors) - max(room, 0), 0)


def _jsonl(settings: Settings, path: Path) -> tuple[list[tuple[int, LearningRecord]], _Errors]:
    good: list[tuple[int, LearningRecord]] = []
    limits = settings.limits
    bad = _Errors(limits.max_errors)
    with path.open("rb") as f:
        for n, raw in bounded_lines(f, limits.max_line_chars):
            if raw is None:
                bad.add([{"line": n, "field": "-", "reason": f"line longer than limits.max_line_chars = "
                                                            f"{limits.max_line_chars:,} characters"}])
                continue
            line = _decode(path, n, raw.removeprefix(codecs.BOM_UTF8) if n == 1 else raw)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                bad.add([{"line": n, "field": "-", "reason": f"not JSON: {e.msg}"}])
                continue
            except RecursionError as e:
                # The whole file is refused, nothing stored: a learning record is a flat object, so a line
                # nested this deep is no export of anything but an attack or a corrupted file.
                raise ImportFileError(f"{path.name}: line {n}: JSON nested too deeply") from e
            if isinstance(obj, dict):
                obj.setdefault("programme", settings.sync.programme)
            try:
                good.append((n, LearningRecord.model_validate(obj)))
            except ValidationError as e:
                bad.add(_errors(n, e))
    return good, bad


def _decode(path: Path, n: int, raw: bytes) -> str:
    """Line `n` as text; an ImportFileError naming the line and column when it is not UTF-8, so the file is
    refused as a whole (a wrong encoding garbles every line, not one) and nothing of it is stored."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path.name}: line {n}, column {e.start + 1}: not UTF-8 text "
                              f"(byte 0x{raw[e.start]:02x}); save the file as UTF-8") from e


def _when(v: Any) -> Any:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=LOCAL_TZ)
    if isinstance(v, date):
        return datetime.combine(v, time(12), LOCAL_TZ)
    if isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.strip())
        except ValueError:
            return v
        return d if d.tzinfo else d.replace(tzinfo=LOCAL_TZ)
    return v


def _xlsx(settings: Settings, path: Path) -> tuple[list[tuple[int, LearningRecord]], _Errors]:
    try:
        rows = first_sheet_rows(path, settings.limits)  # limits checked, sheet unpacked (readers/xlsx.py)
    except XlsxReadError as e:
        raise ImportFileError(str(e)) from e
    header = [str(h).strip() if h is not None else "" for h in next(rows, (0, []))[1]]
    names = {zh: en for en, zh in XLSX_COLUMNS.items()} | {en: en for en in XLSX_COLUMNS}
    cols = {names[h]: i for i, h in enumerate(header) if h in names}
    missing = [f"{c} ({XLSX_COLUMNS[c]})" for c in REQUIRED_XLSX if c not in cols]
    if missing:
        raise ImportFileError(f"{path.name}: header row lacks column(s) {', '.join(missing)}")
    good: list[tuple[int, LearningRecord]] = []
    bad = _Errors(settings.limits.max_errors)
    for n, row in rows:
        if not any(v not in (None, "") for v in row):
            continue
        # An empty cell is "" from the reader; the record's optional fields take None, as before.
        get = {c: (row[i] if i < len(row) and row[i] != "" else None) for c, i in cols.items()}
        teacher = str(get["teacher"] or "").strip()
        obj = {"teacher": teacher, "programme": settings.sync.programme, "course": str(get["course"] or ""),
               "activity": str(get["activity"] or "") or None, "kind": "score", "score": get["score"],
               "hours": get.get("hours"), "occurred_at": _when(get["occurred_at"]),
               "source": get.get("source") or f"import:xlsx:{teacher}:{get['course']}:{get['activity']}"}
        try:
            good.append((n, LearningRecord.model_validate(obj)))
        except ValidationError as e:
            bad.add(_errors(n, e))
    return good, bad


def import_file(settings: Settings, store: Store, path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        good, bad = _jsonl(settings, path)
    elif suffix == ".xlsx":
        good, bad = _xlsx(settings, path)
    else:
        raise ImportFileError(f"{path.name}: expected .jsonl or .xlsx")
    with store.session() as s:
        inserted = [rec for _n, rec in good if store_record(s, rec, "import")]
        # An imported revocation withdraws like a webhook's, and an imported completion already revoked is withdrawn.
        withdrawn = apply_revocations(s, inserted)
    return {"file": str(path), "valid": len(good), "stored": len(inserted), "duplicates": len(good) - len(inserted),
            "withdrawn": withdrawn, "errors": list(bad), "errors_omitted": bad.omitted}
