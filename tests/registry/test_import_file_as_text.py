"""The registry import file (`creditbridge push` to the file target) opened in a spreadsheet program: names and
schools are text, never formulas (issue #14 item 5); an export_dir that cannot take the file is an error."""

from __future__ import annotations

import codecs
import csv
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook
from registry_helpers import id_number, put_results
from sqlalchemy import update

from creditbridge.connector.registry.file import HEADERS
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.registry import RegistrySubmission

Run = Callable[..., subprocess.CompletedProcess[str]]


def _seed(tmp_path: Path, texts: tuple[str, ...]) -> dict[str, str]:
    """One teacher per text, named and schooled by it, with a passed result. Returns ID number -> text."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as s:
            for n, text in enumerate(texts, start=1):
                s.add(Teacher(programme="sd-2022", id_number=id_number(n), name=text, school_code=f"S{n}",
                              school_name=text, county="历下区", city="济南市", stage="primary", subject="math"))
        put_results(store, [{"teacher": id_number(n), "credits": -1 if n == 1 else 5}
                            for n in range(1, len(texts) + 1)])
    finally:
        store.dispose()
    return {id_number(n): text for n, text in enumerate(texts, start=1)}


def _push(tmp_path: Path, creditbridge_cli: Run, fmt: str, export_dir: Path) -> subprocess.CompletedProcess[str]:
    return creditbridge_cli("push", "--json", CREDITBRIDGE_REGISTRY_TARGET="file",
                            CREDITBRIDGE_CONFIG=str(_config(tmp_path, fmt, export_dir)))


def _config(tmp_path: Path, fmt: str, export_dir: Path) -> Path:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[registry]\nexport_dir = "{export_dir.as_posix()}"\nfile_format = "{fmt}"\n', encoding="utf-8")
    return cfg


def test_xlsx_import_file_holds_names_and_schools_as_text(tmp_path: Path, creditbridge_cli: Run,
                                                          formula_texts: tuple[str, ...]) -> None:
    by_id = _seed(tmp_path, formula_texts)
    proc = _push(tmp_path, creditbridge_cli, "xlsx", tmp_path / "exports")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["acknowledged"] == len(formula_texts)
    (path,) = (tmp_path / "exports").iterdir()
    assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)  # full ID numbers: the owner's only
    ws = load_workbook(path).active  # not read-only: each cell's stored data type
    assert [c.value for c in ws[1]] == HEADERS
    rows = {row[0].value: row for row in ws.iter_rows(min_row=2)}
    assert set(rows) == set(by_id)
    name, school, credits = HEADERS.index("姓名"), HEADERS.index("学校名称"), HEADERS.index("学分")
    for teacher, text in by_id.items():
        for col in (name, school):
            cell = rows[teacher][col]
            assert (cell.value, cell.data_type) == (text, "s"), (teacher, HEADERS[col])
    # Numbers stay numbers, a negative one included.
    assert (rows[id_number(1)][credits].value, rows[id_number(1)][credits].data_type) == (-1, "n")
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]


def test_csv_import_file_prefixes_formula_text_with_an_apostrophe(tmp_path: Path, creditbridge_cli: Run,
                                                                  formula_texts: tuple[str, ...]) -> None:
    by_id = _seed(tmp_path, formula_texts)
    proc = _push(tmp_path, creditbridge_cli, "csv", tmp_path / "exports")
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "exports").iterdir()
    assert path.read_bytes().startswith(codecs.BOM_UTF8)  # what Excel in China needs to read the headers
    assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)  # full ID numbers: the owner's only
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == HEADERS
    got = {r[0]: dict(zip(HEADERS, r, strict=True)) for r in rows[1:]}
    assert set(got) == set(by_id)
    for teacher, text in by_id.items():
        assert got[teacher]["姓名"] == "'" + text and got[teacher]["学校名称"] == "'" + text
    assert float(got[id_number(1)]["学分"]) == -1.0  # a number, not "'-1.0"
    assert float(got[id_number(2)]["学分"]) == 5.0 and got[id_number(2)]["考核结果"] == "合格"


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_a_symlink_under_the_import_file_name_is_refused(tmp_path: Path, creditbridge_cli: Run, fmt: str) -> None:
    """The file's name is the batch key: a dry run cannot tell it, so plant links after a first push wrote it,
    then ask for the same batch again (a resend rewrites the same file)."""
    _seed(tmp_path, ("教师1",))
    exports = tmp_path / "exports"
    assert _push(tmp_path, creditbridge_cli, fmt, exports).returncode == 0
    (written,) = exports.iterdir()
    victim = tmp_path / "victim"
    victim.write_text("keep", encoding="utf-8")
    written.unlink()
    written.symlink_to(victim)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as s:  # as if the registry's answer had been lost: the batch goes out again
            s.execute(update(RegistrySubmission).values(state="pending"))
    finally:
        store.dispose()
    proc = _push(tmp_path, creditbridge_cli, fmt, exports)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: registry.export_dir: {written}: is a symbolic link; refusing")
    assert "Traceback" not in proc.stderr and victim.read_text(encoding="utf-8") == "keep"
    assert os.listdir(exports) == [written.name] and written.is_symlink()


# Text XML 1.0 cannot hold beyond the C0 controls (U+FFFE, U+FFFF), the error values Excel reads from a CSV,
# and a NUL (attack report items 1 and 12).
UNWRITABLE = ("张\uffff三", "\ufffe第一中学", "#N/A", "#REF!", "王\x00芳")
XLSX_TEXT = {"张\uffff三": "张_xFFFF_三", "\ufffe第一中学": "_xFFFE_第一中学", "王\x00芳": "王_x0000_芳"}
CSV_TEXT = {"#N/A": "'#N/A", "#REF!": "'#REF!", "王\x00芳": "王_x0000_芳"}


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_text_a_file_cannot_hold_is_escaped_and_the_push_goes_through(tmp_path: Path, creditbridge_cli: Run,
                                                                      fmt: str) -> None:
    by_id = _seed(tmp_path, UNWRITABLE)
    exports = tmp_path / "exports"
    proc = _push(tmp_path, creditbridge_cli, fmt, exports)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["acknowledged"] == len(UNWRITABLE)
    # Nothing left to resend: the frozen payload does not block the next push.
    again = _push(tmp_path, creditbridge_cli, fmt, exports)
    assert again.returncode == 0 and json.loads(again.stdout)["acknowledged"] == 0, again.stdout + again.stderr
    (path,) = exports.iterdir()
    name, school = HEADERS.index("姓名"), HEADERS.index("学校名称")
    if fmt == "xlsx":
        ws = load_workbook(path).active
        got = {row[0].value: [(row[c].value, row[c].data_type) for c in (name, school)]
               for row in ws.iter_rows(min_row=2)}
        for teacher, text in by_id.items():
            assert got[teacher] == [(XLSX_TEXT.get(text, text), "s")] * 2, text
    else:
        raw = path.read_bytes()
        assert b"\x00" not in raw
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = {r[0]: r for r in list(csv.reader(fh))[1:]}
        for teacher, text in by_id.items():
            assert [rows[teacher][name], rows[teacher][school]] == [CSV_TEXT.get(text, text)] * 2, text
