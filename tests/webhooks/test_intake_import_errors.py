"""`creditbridge intake import` of a file that cannot be read as records (issue #14 item 13): one `error:` line
naming the file and line, exit 2, no traceback, and nothing of the file stored."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from webhook_helpers import ID_NUMBER

from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow

Run = Callable[..., subprocess.CompletedProcess[str]]

GOOD = {"teacher": ID_NUMBER, "programme": "sd-2022", "course": "C1", "activity": None, "kind": "course",
        "hours": 3, "minutes": None, "score": None, "passed": True, "occurred_at": "2022-09-01T10:00:00+08:00",
        "source": "offline:1"}


def _line(**over: object) -> bytes:
    return json.dumps({**GOOD, **over}, ensure_ascii=False).encode("utf-8") + b"\n"


def _stored(tmp_path: Path) -> int:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as s:
            return int(s.scalar(select(func.count()).select_from(LearningRecordRow)) or 0)
    finally:
        store.dispose()


def _refused(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == f"error: {expected}\n"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert ID_NUMBER not in proc.stdout + proc.stderr


def test_invalid_utf8_names_line_and_column_and_stores_nothing(tmp_path: Path, creditbridge_cli: Run) -> None:
    f = tmp_path / "records.jsonl"
    f.write_bytes(_line() + _line(source="offline:2") + b'{"course": "\xff\xfe"}\n')
    _refused(creditbridge_cli("intake", "import", str(f)),
             "records.jsonl: line 3, column 13: not UTF-8 text (byte 0xff); save the file as UTF-8")
    assert _stored(tmp_path) == 0


def test_a_gb18030_export_is_refused_as_not_utf8(tmp_path: Path, creditbridge_cli: Run) -> None:
    f = tmp_path / "records.jsonl"
    f.write_bytes(json.dumps({**GOOD, "course": "师德师风"}, ensure_ascii=False).encode("gb18030") + b"\n")
    proc = creditbridge_cli("intake", "import", str(f), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: records.jsonl: line 1, column ") and "not UTF-8 text" in proc.stderr
    assert _stored(tmp_path) == 0


def test_json_nested_200000_deep_is_refused(tmp_path: Path, creditbridge_cli: Run) -> None:
    depth = 200_000
    # Objects 100,000 deep: 200,000 would be a line over limits.max_line_chars, an error of its own line
    # (tests/webhooks/test_import_bombs.py) rather than a nesting the parser meets.
    for name, nested in (("arrays.jsonl", b"[" * depth + b"]" * depth),
                         ("objects.json", b'{"a":' * (depth // 2) + b"1" + b"}" * (depth // 2))):
        f = tmp_path / name
        f.write_bytes(_line() + b"\n" + nested + b"\n" + _line(source="offline:3"))
        _refused(creditbridge_cli("intake", "import", str(f)), f"{name}: line 3: JSON nested too deeply")
        assert _stored(tmp_path) == 0


def test_a_file_named_xlsx_that_is_no_workbook(tmp_path: Path, creditbridge_cli: Run) -> None:
    f = tmp_path / "scores.xlsx"
    f.write_bytes(_line())
    _refused(creditbridge_cli("intake", "import", str(f)),
             "scores.xlsx: cannot be opened as an XLSX workbook (no zip archive, or a broken one: an .xls or a CSV "
             "renamed .xlsx, or a truncated copy?)")
    assert _stored(tmp_path) == 0


def test_a_byte_order_mark_is_still_fine_and_bad_fields_keep_their_message(tmp_path: Path,
                                                                            creditbridge_cli: Run) -> None:
    f = tmp_path / "records.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + _line() + _line(teacher="", source="offline:2"))
    proc = creditbridge_cli("intake", "import", str(f), "--json")
    assert proc.returncode == 1, proc.stderr  # one bad line: reported, the good one stored
    out = json.loads(proc.stdout)
    assert out["stored"] == 1 and _stored(tmp_path) == 1
    # The reason is the validator's own text (it masks ID numbers itself), not a masked "Fiel********ed".
    assert [(e["line"], e["field"]) for e in out["errors"]] == [(2, "teacher")]
    assert "missing ID number" in out["errors"][0]["reason"]
