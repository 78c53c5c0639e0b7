"""`creditbridge report` run as a person runs it: hostile names stay text in the XLSX (issue #14 item 5), a
bad --out is one `error:` line and exit 2 (item 13), and no report is written through a symlink (item 14)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from registry_helpers import id_number

from creditbridge.i18n import words
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher

Run = Callable[..., subprocess.CompletedProcess[str]]
ZH = words("zh-CN")


def _store_with(tmp_path: Path, names: tuple[str, ...]) -> None:
    """Teachers (none passed yet) whose name and school name are the given texts, in tmp_path/store.db."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as s:
            for n, text in enumerate(names, start=1):
                s.add(Teacher(programme="sd-2022", id_number=id_number(n), name=text, school_code=f"S{n}",
                              school_name=text, county="历下区", city="济南市", stage="primary", subject="math"))
    finally:
        store.dispose()


def _refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_names_and_schools_are_text_in_the_report_workbook(tmp_path: Path, creditbridge_cli: Run,
                                                           formula_texts: tuple[str, ...]) -> None:
    _store_with(tmp_path, formula_texts)
    proc = creditbridge_cli("report", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    (xlsx,) = (tmp_path / "out").glob("*.xlsx")
    wb = load_workbook(xlsx)  # not read-only: every cell's data type as stored
    assert not [c.coordinate for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    schools = wb[ZH("sheet.schools")]  # the default language, zh-CN
    header = [c.value for c in schools[1]]
    cells = [row[header.index(ZH("col.school_name"))] for row in schools.iter_rows(min_row=2)]
    assert sorted(c.value for c in cells) == sorted(formula_texts)
    assert {c.data_type for c in cells} == {"s"}
    warnings = wb[ZH("sheet.deadlines")]
    header = [c.value for c in warnings[1]]
    listed = [row for row in warnings.iter_rows(min_row=2)
              if row[header.index(ZH("col.list"))].value == ZH("list.not passed")]
    for column in ("name", "school"):
        got = [row[header.index(ZH(f"col.{column}"))] for row in listed]
        assert sorted(c.value for c in got) == sorted(formula_texts), column
        assert {c.data_type for c in got} == {"s"}, column


def _only_planted(directory: Path, planted: set[str]) -> None:
    """Nothing half-written: no report and no temporary file beside what the test put there."""
    assert set(os.listdir(directory)) == planted


def test_out_is_dev_null(tmp_path: Path, creditbridge_cli: Run) -> None:
    _refused(creditbridge_cli("report", "--out", "/dev/null"), "/dev/null: not a directory")


def test_out_below_a_file(tmp_path: Path, creditbridge_cli: Run) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    _refused(creditbridge_cli("report", "--out", str(tmp_path / "a-file" / "reports")),
             f"{tmp_path / 'a-file' / 'reports'}: cannot create the directory: Not a directory")
    _only_planted(tmp_path, {"a-file", "store.db"})


def test_out_name_too_long(tmp_path: Path, creditbridge_cli: Run) -> None:
    long = tmp_path / ("报" * 200)
    _refused(creditbridge_cli("report", "--out", str(long)), str(long), "File name too long")
    deep = tmp_path / "/".join(["d" * 200] * 30)  # every part fits, the whole path does not
    _refused(creditbridge_cli("report", "--out", str(deep)), "File name too long")
    _only_planted(tmp_path, {"store.db"})


def test_out_not_writable(tmp_path: Path, creditbridge_cli: Run) -> None:
    if os.geteuid() == 0:  # root writes into a mode-500 directory: use one the kernel refuses to everyone
        target = Path("/sys/kernel")
        if not target.is_dir():
            pytest.skip("running as root and no /sys/kernel to stand for an unwritable directory")
    else:
        target = tmp_path / "locked"
        target.mkdir(mode=0o500)
    before = set(os.listdir(target))
    _refused(creditbridge_cli("report", "--out", str(target)), f"{target}/credit-report-all-",
             f"cannot create a file in {target}")
    assert set(os.listdir(target)) == before


def test_a_symlink_in_out_is_not_followed(tmp_path: Path, creditbridge_cli: Run) -> None:
    _store_with(tmp_path, ("教师1",))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.xlsx"
    victim.write_bytes(b"not yours")
    # The report's names carry the second they are written: plant a link under each of the next minutes'.
    now = datetime.now(UTC)
    planted = set()
    for second in range(180):
        stem = f"credit-report-all-{(now + timedelta(seconds=second)).strftime('%Y%m%d-%H%M%S')}"
        (out / f"{stem}.xlsx").symlink_to(victim)
        (out / f"{stem}.html").symlink_to(elsewhere / f"{stem}.html")  # dangling: following it creates a file
        planted |= {f"{stem}.xlsx", f"{stem}.html"}
    _refused(creditbridge_cli("report", "--out", str(out)), f"{out}/credit-report-all-",
             "is a symbolic link; refusing to write through it")
    assert victim.read_bytes() == b"not yours" and os.listdir(elsewhere) == ["victim.xlsx"]
    _only_planted(out, planted)
    assert all((out / name).is_symlink() for name in planted)


def test_programme_cannot_lead_the_report_out_of_the_directory(tmp_path: Path, creditbridge_cli: Run) -> None:
    _store_with(tmp_path, ("教师1",))
    out = tmp_path / "a" / "b"
    proc = creditbridge_cli("report", "--out", str(out), "--programme", "../../escaped")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.suffix for p in out.iterdir()) == [".html", ".xlsx"]
    assert all(p.name.startswith("credit-report-.._.._escaped-") for p in out.iterdir())
    assert set(os.listdir(tmp_path)) == {"a", "store.db"} and os.listdir(tmp_path / "a") == ["b"]
