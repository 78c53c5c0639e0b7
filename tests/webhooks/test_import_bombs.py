"""Issue #14 item 12 for `intake import`: 300,000 bad JSON lines, one endless line, an XLSX holding a 300 MB
shared string. The real CLI in a subprocess under an address-space cap: bounded memory, time and output, a
clear `error:` where the whole file is refused."""

from __future__ import annotations

import json
from pathlib import Path

from bombs import xlsx_with_huge_shared_string
from cli_process import run_cli
from sqlalchemy import func, select
from webhook_helpers import ID_NUMBER

from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow

MEMORY_MB = 1024


def _config(tmp_path: Path, db_url: str, extra: str = "") -> Path:
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n{extra}', encoding="utf-8")
    return path


def _good(n: int) -> str:
    return json.dumps({"teacher": ID_NUMBER, "programme": "sd-2022", "course": "C1", "activity": None,
                       "kind": "course", "hours": 3, "passed": True, "occurred_at": "2022-09-01T10:00:00+08:00",
                       "source": f"offline:{n}"})


def test_300000_bad_lines_cost_a_bounded_error_list(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(_good(1) + "\n" + "{not json\n" * 300_000, encoding="utf-8")
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    ran = run_cli(config, "intake", "import", str(path), "--json", memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 1, ran.stderr  # bad lines: exit 1, the good one stored
    doc = json.loads(ran.stdout)
    assert (doc["stored"], len(doc["errors"]), doc["errors_omitted"]) == (1, 1000, 299_000)
    assert doc["errors"][0] == {"line": 2, "field": "-", "reason": "not JSON: Expecting property name enclosed in "
                                                                   "double quotes"}
    assert len(ran.stdout) < 200_000 and ran.max_rss_mb < 300, (len(ran.stdout), ran.max_rss_mb)

    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("{not json\n" * 3000, encoding="utf-8")
    text = run_cli(config, "intake", "import", str(fewer), memory_mb=MEMORY_MB, timeout=30)
    assert text.stdout.startswith("stored 0, already known 0, bad 3000")
    assert text.stderr.count("\n") == 1001 and "… and 2000 more errors, not listed (limits.max_errors)" in text.stderr
    assert "Traceback" not in ran.output + text.output


def test_an_endless_line_is_an_error_of_that_line_and_never_held(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "records.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(_good(1) + "\n")
        f.write('{"teacher": "' + "1" * 3_000_000 + '"}\n')
        f.write(_good(2) + "\n")
    config = _config(tmp_path, db_url, "[limits]\nmax_line_chars = 100000\n")
    ran = run_cli(config, "intake", "import", str(path), "--json", memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 1, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["stored"] == 2
    assert doc["errors"] == [{"line": 2, "field": "-",
                              "reason": "line longer than limits.max_line_chars = 100,000 characters"}]
    assert ran.max_rss_mb < 300
    store = open_store(db_url)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(LearningRecordRow)) == 2
    finally:
        store.dispose()


def test_xlsx_with_a_300_mb_shared_string_is_refused_before_opening(tmp_path: Path) -> None:
    header = ["身份证号", "课程编号", "活动编号", "成绩", "日期"]
    bomb = xlsx_with_huge_shared_string(tmp_path / "scores.xlsx", header, [ID_NUMBER, "C1", "A1", "90", "2022-09-01"],
                                        300 << 20)
    assert bomb.stat().st_size < 2 << 20
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    ran = run_cli(config, "intake", "import", str(bomb), memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith("error: scores.xlsx: its shared strings (xl/sharedStrings.xml) unpack to 300 MB, "
                                 "more than limits.xlsx_shared_strings_mb = 256 MB"), ran.stderr
    assert "Traceback" not in ran.output and ran.max_rss_mb < 300
