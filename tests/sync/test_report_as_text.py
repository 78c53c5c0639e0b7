"""The sync report a person opens after `creditbridge sync roster`: names in the plan sheet are text, never
formulas (issue #14 item 5), and the workbook is written only into sync.report_dir (item 14)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sync_helpers import make_env, people, write_roster

from creditbridge.i18n import words
from creditbridge.records.outfiles import OutputFileError
from creditbridge.sync.outcome import ErrorEntry, PlanLine, SyncOutcome
from creditbridge.sync.report import write_report

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_plan_sheet_names_are_text_after_a_roster_sync(tmp_path: Path, sandbox_server: object, sqlite_url: str,
                                                       creditbridge_cli: Run,
                                                       formula_texts: tuple[str, ...]) -> None:
    env = make_env(tmp_path, sandbox_server, sqlite_url)
    staff = [p.moved(name=text, school=f"37010200{n}", school_name=text)
             for n, (p, text) in enumerate(zip(people(len(formula_texts)), formula_texts, strict=True), start=1)]
    roster = write_roster(tmp_path / "roster.csv", staff)
    proc = creditbridge_cli("sync", "roster", str(roster), "--dry-run", "--json",
                            CREDITBRIDGE_CONFIG=str(env.config), **env.env)
    assert proc.returncode == 0, proc.stderr
    report = Path(json.loads(proc.stdout)["report"])
    assert report.parent == env.report_dir
    wb = load_workbook(report)  # not read-only: each cell's stored data type
    assert not [c.coordinate for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    plan = wb[ZH("sync.sheet.plan")]  # the default language, zh-CN
    header = [c.value for c in plan[1]]
    names = [row[header.index(ZH("sync.name"))] for row in plan.iter_rows(min_row=2)]
    # The roster reader strips the whitespace around a name ("\t=1" is read as "=1"): the plan shows what it read.
    assert sorted(c.value for c in names) == sorted(t.strip() for t in formula_texts)
    assert {c.data_type for c in names} == {"s"}


def test_a_control_character_in_a_name_does_not_take_the_report_down(tmp_path: Path, sandbox_server: object,
                                                                      sqlite_url: str, creditbridge_cli: Run) -> None:
    """A vertical tab pasted into a name: the run used to end in a traceback while writing its report, after
    Moodle had been changed. The report shows it the way Excel writes it."""
    env = make_env(tmp_path, sandbox_server, sqlite_url)
    roster = write_roster(tmp_path / "roster.csv", [p.moved(name="王\x0b芳") for p in people(2)], encoding="utf-8")
    proc = creditbridge_cli("sync", "roster", str(roster), "--json", CREDITBRIDGE_CONFIG=str(env.config), **env.env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["created"] == 2
    plan = load_workbook(doc["report"])[ZH("sync.sheet.plan")]
    assert [r[3].value for r in plan.iter_rows(min_row=2)] == ["王_x000B_芳"] * 2


def test_every_sheet_keeps_the_exact_text(tmp_path: Path, formula_texts: tuple[str, ...]) -> None:
    outcome = SyncOutcome(kind="roster", file=formula_texts[0], programme="sd-2022", run_id=7)
    outcome.plan = [PlanLine("create", n, "3701************11", text, text) for n, text in enumerate(formula_texts)]
    outcome.errors = [ErrorEntry(n, "姓名", text) for n, text in enumerate(formula_texts)]
    outcome.notes = list(formula_texts)
    path = write_report(outcome, tmp_path / "reports" / "sync.xlsx")
    wb = load_workbook(path)
    plan = list(wb[ZH("sync.sheet.plan")].iter_rows(min_row=2))
    assert [(r[3].value, r[3].data_type, r[4].value, r[4].data_type) for r in plan] == \
        [(t, "s", t, "s") for t in formula_texts]
    errors = list(wb[ZH("sync.sheet.errors")].iter_rows(min_row=2))
    assert [(r[2].value, r[2].data_type) for r in errors] == [(t, "s") for t in formula_texts]
    summary = {r[0].value: r[1] for r in wb[ZH("sync.sheet.summary")].iter_rows(min_row=2)
               if r[0].value != ZH("sync.note")}
    assert (summary[ZH("sync.file")].value, summary[ZH("sync.file")].data_type) == (formula_texts[0], "s")
    notes = [r[1] for r in wb[ZH("sync.sheet.summary")].iter_rows(min_row=2) if r[0].value == ZH("sync.note")]
    assert [(c.value, c.data_type) for c in notes] == [(t, "s") for t in formula_texts]


def test_a_symlink_under_the_report_name_is_refused(tmp_path: Path) -> None:
    outcome = SyncOutcome(kind="roster", file="r.csv", programme="sd-2022")
    victim = tmp_path / "victim.xlsx"
    victim.write_bytes(b"keep")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "sync.xlsx").symlink_to(victim)
    with pytest.raises(OutputFileError, match=r"sync\.xlsx: is a symbolic link"):
        write_report(outcome, tmp_path / "reports" / "sync.xlsx")
    assert victim.read_bytes() == b"keep" and os.listdir(tmp_path / "reports") == ["sync.xlsx"]
