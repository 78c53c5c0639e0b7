"""The report in the reader's language (issue #18): `report.language` (zh-CN by default, en) and
`creditbridge report --language`. The same store gives two reports that differ only in words and formats: every
figure is equal, no column is titled with a field name, and text stays text (formula-safe) in both."""

from __future__ import annotations

import json
import re
import string
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from registry_helpers import id_number
from test_report import _seed

from creditbridge.cli.main import cli
from creditbridge.i18n import LANGUAGES, MESSAGES, LanguageError, words
from creditbridge.reports.build import FONT_STACK
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import Teacher
from creditbridge.sync.outcome import ErrorEntry, PlanLine, SyncOutcome
from creditbridge.sync.report import write_report as write_sync_report

Run = Callable[..., subprocess.CompletedProcess[str]]
ZH, EN = words("zh-CN"), words("en")
# The data's field names: a reader sees words, never these.
FIELD_NAMES = ("pass_rate", "credits_total", "credits_mean", "school_name", "school_code", "days_left", "by_city")


def _report(runner: CliRunner, cfg: Path, out: Path, *language: str) -> tuple[dict[str, Any], Path, Path]:
    result = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(out), "--json", *language])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    return doc, Path(doc["report"]["xlsx"]), Path(doc["report"]["html"])


def _cells(path: Path) -> dict[str, list[list[Any]]]:
    wb = load_workbook(path, read_only=True)
    try:
        return {ws.title: [[(c.value, c.number_format) for c in row] for row in ws.iter_rows()]
                for ws in wb.worksheets}
    finally:
        wb.close()


def test_the_same_store_in_both_languages_differs_only_in_words(store: Store, tmp_path: Path,
                                                                 runner: CliRunner) -> None:
    _seed(store)
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{store.url}"\n', encoding="utf-8")
    zh_doc, zh_xlsx, zh_html = _report(runner, cfg, tmp_path / "zh")  # the default: report.language = zh-CN
    en_doc, en_xlsx, en_html = _report(runner, cfg, tmp_path / "en", "--language", "en")

    # --json is a machine contract: the same keys and values whatever the language.
    def figures(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in ("generated_at", "report")}
    assert figures(zh_doc) == figures(en_doc)

    zh, en = _cells(zh_xlsx), _cells(en_xlsx)
    assert list(zh) == ["汇总", "地市", "区县", "学校", "学分分布", "被退回记录", "待确认记录", "截止日期提醒"]
    assert list(en) == ["Summary", "Cities", "Counties", "Schools", "Credits", "Rejected", "Pending",
                        "Deadline warnings"]
    assert [v for v, _ in zh["学校"][0]] == ["地市", "区县", "学校代码", "学校", "参训人数", "已评定", "合格", "合格率",
                                           "学分合计", "人均学分"]
    assert [v for v, _ in en["Schools"][0]] == ["City", "County", "School code", "School", "Teachers", "Evaluated",
                                               "Passed", "Pass rate", "Total credits", "Mean credits"]
    figures_seen = 0
    for (zh_title, zh_rows), (en_title, en_rows) in zip(zh.items(), en.items(), strict=True):
        assert len(zh_rows) == len(en_rows), (zh_title, en_title)
        for zh_row, en_row in zip(zh_rows, en_rows, strict=True):
            assert len(zh_row) == len(en_row), (zh_title, zh_row, en_row)
            for (a, a_format), (b, b_format) in zip(zh_row, en_row, strict=True):
                if zh_title == "汇总" and isinstance(a, datetime):
                    continue  # generated at: the two runs' own moments
                if isinstance(a, int | float | datetime) or isinstance(b, int | float | datetime):
                    assert (a, type(a)) == (b, type(b)), (zh_title, zh_row, en_row)  # the figure itself
                    figures_seen += 1
                    if a_format == "0.0%":
                        assert b_format == "0.0%"
    assert figures_seen > 100
    text = " ".join(str(v) for rows in (*zh.values(), *en.values()) for row in rows for v, _ in row)
    assert not [f for f in FIELD_NAMES if f in text]
    # Names and places are data: the same text in both.
    assert "济南市" in text and "教师3" in text
    # A pass rate is a number shown as a percentage; a deadline is a date shown the language's way.
    rates = [(v, f) for v, f in zh["地市"][1:][0] if f == "0.0%"]
    assert rates and isinstance(rates[0][0], float)
    zh_deadline = next(r for r in zh["截止日期提醒"][1:])[1]
    en_deadline = next(r for r in en["Deadline warnings"][1:])[1]
    assert zh_deadline[0] == en_deadline[0] == datetime(2022, 12, 31)
    assert zh_deadline[1] == ZH.xlsx_date_format != en_deadline[1] == EN.xlsx_date_format

    zh_page, en_page = zh_html.read_text(encoding="utf-8"), en_html.read_text(encoding="utf-8")
    assert "<html lang='zh-CN'>" in zh_page and "<html lang='en'>" in en_page
    assert "<h1>继续教育学分报告: 全部项目</h1>" in zh_page and "<h1>Credit report: all programmes</h1>" in en_page
    for key in ("h.deadlines", "h.by_city", "h.by_county", "h.by_school", "h.distribution", "h.registry"):
        assert f"<h2>{ZH(key)}</h2>" in zh_page and f"<h2>{EN(key)}</h2>" in en_page
    assert "登记截止日期 2022年12月31日" in zh_page and "registration deadline Dec 31, 2022" in en_page
    assert 'aria-label="各地市合格率"' in zh_page and 'aria-label="pass rate by city"' in en_page
    assert FONT_STACK in zh_page and '"Noto Sans CJK SC"' in FONT_STACK and '"Microsoft YaHei"' in FONT_STACK
    # Every figure on the page (the right-aligned cells) is the same in both.
    zh_figures = re.findall(r'<td class="n">([^<]*)</td>', zh_page)
    assert zh_figures == re.findall(r'<td class="n">([^<]*)</td>', en_page) and "62.5%" in zh_page
    assert len(zh_figures) > 30
    for page in (zh_page, en_page):
        shown = re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)
        assert not [f for f in FIELD_NAMES if f in shown]
    assert not [k for k in ("h.by_city", "col.pass_rate", "h.deadlines", "col.teachers") if EN(k) in zh_page]
    assert not re.search(r"[\u4e00-\u9fff]", re.sub(
        r"济南市|青岛市|历下区|市中区|市南区|学校|教师\d", "", en_page)), "en: only the data is Chinese"


@pytest.mark.parametrize("value", ["fr", "EN", "zh_CN", " en", "", "en\x1b[2J", "x" * 5000])
def test_a_wrong_language_is_one_error_line_and_writes_nothing(tmp_path: Path, runner: CliRunner,
                                                               value: str) -> None:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(out), "--language", value])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --language: ") and "accepted: zh-CN, en" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "\x1b" not in result.stderr  # control characters are shown escaped
    assert not out.exists() and not (tmp_path / "store.db").exists()


def test_a_wrong_language_from_the_installed_command(tmp_path: Path, creditbridge_cli: Run) -> None:
    proc = creditbridge_cli("report", "--out", str(tmp_path / "out"), "--language", "de")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: --language: 'de' is not a report language; accepted: zh-CN, en\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ['"fr"', '"EN"', "1", "true", '["en"]'])
def test_a_wrong_language_setting_names_the_setting(tmp_path: Path, runner: CliRunner, value: str) -> None:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f"[report]\nlanguage = {value}\n", encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "report.language" in result.stderr, result.stderr
    assert "'zh-CN'" in result.stderr and not (tmp_path / "out").exists()


def test_the_setting_chooses_the_language_and_the_option_overrides_it(tmp_path: Path,
                                                                       creditbridge_cli: Run) -> None:
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text('[report]\nlanguage = "en"\n', encoding="utf-8")
    proc = creditbridge_cli("--config", str(cfg), "report", "--out", str(tmp_path / "en"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("teachers 0, evaluated 0, passed 0 (-)")
    assert load_workbook(next((tmp_path / "en").glob("*.xlsx")), read_only=True).sheetnames[0] == "Summary"
    proc = creditbridge_cli("--config", str(cfg), "report", "--out", str(tmp_path / "zh"), "--language", "zh-CN")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("参训 0 人")
    assert load_workbook(next((tmp_path / "zh").glob("*.xlsx")), read_only=True).sheetnames[0] == "汇总"


def test_names_stay_text_in_the_english_workbook(tmp_path: Path, creditbridge_cli: Run,
                                                 formula_texts: tuple[str, ...]) -> None:
    """records/cells.py's formula safety holds in every language (the zh-CN default: test_report_files)."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as s:
            for n, text in enumerate(formula_texts, start=1):
                s.add(Teacher(programme="sd-2022", id_number=id_number(n), name=text, school_code=f"S{n}",
                              school_name=text, county=text, city="济南市", stage="primary", subject="math"))
    finally:
        store.dispose()
    proc = creditbridge_cli("report", "--out", str(tmp_path / "out"), "--language", "en")
    assert proc.returncode == 0, proc.stderr
    wb = load_workbook(next((tmp_path / "out").glob("*.xlsx")))  # not read-only: each cell's stored data type
    assert not [c.coordinate for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    header = [c.value for c in wb["Schools"][1]]
    for column in ("School", "County"):
        cells = [row[header.index(column)] for row in wb["Schools"].iter_rows(min_row=2)]
        assert sorted(c.value for c in cells) == sorted(formula_texts) and {c.data_type for c in cells} == {"s"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_sync_report_is_in_the_language_and_stays_text(tmp_path: Path, formula_texts: tuple[str, ...],
                                                            language: str) -> None:
    w = words(language)
    outcome = SyncOutcome(kind="roster", file="roster.csv", programme="sd-2022", run_id=7, dry_run=True)
    outcome.created = 3
    outcome.plan = [PlanLine("create", n, "3701************11", text, text) for n, text in enumerate(formula_texts)]
    outcome.errors = [ErrorEntry(n, "姓名", text) for n, text in enumerate(formula_texts)]
    path = write_sync_report(outcome, tmp_path / f"sync-{language}.xlsx", language=language)
    wb = load_workbook(path)
    assert wb.sheetnames == [w("sync.sheet.summary"), w("sync.sheet.errors"), w("sync.sheet.plan")]
    assert wb.sheetnames == (["汇总", "错误", "计划"] if language == "zh-CN" else ["summary", "errors", "plan"])
    summary = {r[0].value: r[1].value for r in wb.worksheets[0].iter_rows(min_row=2)}
    assert summary[w("sync.run_id")] == 7 and summary[w("sync.count.created")] == 3
    assert summary[w("sync.dry_run")] == w("yes")
    assert [c.value for c in wb.worksheets[2][1]] == [w(f"sync.{k}") for k in ("action", "row", "who", "name",
                                                                                "detail", "result")]
    names = [r[3] for r in wb.worksheets[2].iter_rows(min_row=2)]
    assert [c.value for c in names] == list(formula_texts) and {c.data_type for c in names} == {"s"}


def test_every_text_of_the_catalogue_is_in_both_languages() -> None:
    fields = string.Formatter()
    for key, texts in MESSAGES.items():
        assert len(texts) == len(LANGUAGES) and all(t.strip() for t in texts), key
        # the same {fields} in each language: a translation cannot drop or invent a figure
        assert len({frozenset(f for _, f, _, _ in fields.parse(t) if f) for t in texts}) == 1, key
        if key.startswith(("sheet.", "sync.sheet.")):  # Excel's rules for a sheet name
            assert all(len(t) <= 31 and not set(t) & set("[]:*?/\\") for t in texts), key
    for w in (ZH, EN):
        sheets = [w(k) for k in MESSAGES if k.startswith("sheet.")]
        assert len(sheets) == len(set(sheets))
    with pytest.raises(LanguageError, match="accepted: zh-CN, en"):
        words("de")


def test_figures_are_formatted_for_the_language() -> None:
    assert (ZH.number(1234.5), EN.number(1234.5)) == ("1,234.5", "1,234.5")
    assert (ZH.percent(0.625), EN.percent(0.625)) == ("62.5%", "62.5%")
    assert (ZH.date("2022-12-31"), EN.date("2022-12-31")) == ("2022年12月31日", "Dec 31, 2022")
    assert ZH.datetime("2022-12-10T03:04:05+00:00").startswith("2022年12月10日")
    assert (ZH.percent(None), ZH.number(None)) == ("", "")
