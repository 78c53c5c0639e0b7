"""The credit report: figures by school, county and city, credits, registry state and deadline warnings, as JSON,
XLSX and one offline HTML page, with ID numbers masked everywhere."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

from click.testing import CliRunner
from openpyxl import load_workbook
from registry_helpers import id_number, put_results

from creditbridge.cli.main import cli
from creditbridge.records import mask_id_number
from creditbridge.reports.build import report_data, write_report
from creditbridge.settings import load_settings
from creditbridge.store import Store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.registry import RegistrySubmission

# (n, school, county, city, credits or None when not evaluated, passed)
PEOPLE = [
    (1, "S1", "历下区", "济南市", 26, True), (2, "S1", "历下区", "济南市", 25, True),
    (3, "S1", "历下区", "济南市", 12, False), (4, "S2", "市中区", "济南市", 24, True),
    (5, "S2", "市中区", "济南市", None, False), (6, "S3", "市南区", "青岛市", 28, True),
    (7, "S3", "市南区", "青岛市", 0, False), (8, "S3", "市南区", "青岛市", 26, True),
]


def _seed(store: Store) -> None:
    with store.session() as s:
        for n, school, county, city, _, _ in PEOPLE:
            s.add(Teacher(programme="sd-2022", id_number=id_number(n), name=f"教师{n}", school_code=school,
                          school_name=f"{school} 学校", county=county, city=city, stage="primary", subject="math"))
        # A suspended teacher without a result is not expected to pass any more.
        s.add(Teacher(programme="sd-2022", id_number=id_number(9), name="教师9", school_code="S1",
                      school_name="S1 学校", county="历下区", city="济南市", stage="primary", status="suspended"))
    put_results(store, [{"teacher": id_number(n), "credits": c, "hours": c, "passed": p}
                        for n, _, _, _, c, p in PEOPLE if c is not None])
    now = datetime(2022, 12, 10, tzinfo=UTC)
    with store.session() as s:
        for n, state, reason in ((1, "acknowledged", None), (2, "rejected", f"unknown ID number {id_number(2)}"),
                                 (3, "pending", None), (4, "sent", None)):
            s.add(RegistrySubmission(programme="sd-2022", teacher=id_number(n), role="teacher", year=2022, version=1,
                                     action="submit", idempotency_key=f"k{n}", payload={}, state=state,
                                     reason=reason, attempts=1, created_at=now, updated_at=now))


def test_report_figures(store: Store) -> None:
    _seed(store)
    settings = load_settings(None, env={}, overrides={"database": {"url": store.url}})
    data = report_data(settings, store, today=date(2022, 12, 20))
    assert data["totals"] == {"teachers": 8, "evaluated": 7, "passed": 5, "pass_rate": 0.625,
                              "credits_total": 141.0, "credits_mean": 20.14}
    cities = {r["city"]: r for r in data["by_city"]}
    assert (cities["济南市"]["teachers"], cities["济南市"]["passed"], cities["济南市"]["pass_rate"]) == (5, 3, 0.6)
    assert (cities["青岛市"]["teachers"], cities["青岛市"]["passed"]) == (3, 2)
    counties = {r["county"]: r for r in data["by_county"]}
    assert counties["市中区"]["pass_rate"] == 0.5 and counties["市中区"]["evaluated"] == 1
    schools = {r["school_code"]: r for r in data["by_school"]}
    assert schools["S1"]["teachers"] == 3 and schools["S1"]["credits_total"] == 63.0
    assert schools["S1"]["county"] == "历下区" and schools["S1"]["city"] == "济南市"
    dist = {r["credits"]: r["teachers"] for r in data["credits_distribution"]}
    assert sum(dist.values()) == 7 and dist["0"] == 1 and dist["26"] == 2 and dist["13"] == 0
    reg = data["registry"]
    assert reg["by_state"] == {"acknowledged": 1, "rejected": 1, "pending": 1, "sent": 1}
    assert [r["teacher"] for r in reg["rejected"]] == [mask_id_number(id_number(2))]
    assert {r["state"] for r in reg["pending"]} == {"pending", "sent"}
    (w,) = data["deadlines"]
    assert (w["programme"], w["deadline"], w["days_left"], w["warning"]) == ("sd-2022", "2022-12-31", 11, True)
    assert {r["name"] for r in w["not_passed"]} == {"教师3", "教师5", "教师7"}
    assert {r["status"] for r in w["not_passed"] if r["name"] == "教师5"} == {"not evaluated"}
    not_ack = {(r["teacher"], r["state"]) for r in w["not_acknowledged"]}
    assert not_ack == {(mask_id_number(id_number(2)), "rejected"), (mask_id_number(id_number(3)), "pending"),
                       (mask_id_number(id_number(4)), "sent"),
                       *((mask_id_number(id_number(n)), "not pushed") for n in (6, 7, 8))}
    assert not _full_ids(json.dumps(data, ensure_ascii=False, default=str))
    # Outside the window the deadline is listed, without a warning.
    assert report_data(settings, store, today=date(2022, 10, 1))["deadlines"][0]["warning"] is False


def _full_ids(text: str) -> list[str]:
    return [i for n in range(1, 10) if (i := id_number(n)) in text]


def test_report_command_writes_xlsx_and_offline_html(store: Store, tmp_path: Path, runner: CliRunner) -> None:
    _seed(store)
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{store.url}"\n', encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    xlsx, html = Path(doc["report"]["xlsx"]), Path(doc["report"]["html"])
    assert xlsx.parent == html.parent == tmp_path / "out"
    assert doc["totals"]["teachers"] == 8

    # The default language is zh-CN (report.language): sheet names and column titles are Chinese words.
    wb = load_workbook(xlsx, read_only=True)
    assert wb.sheetnames == ["汇总", "地市", "区县", "学校", "学分分布", "被退回记录", "待确认记录", "截止日期提醒"]
    cities = list(wb["地市"].iter_rows(values_only=True))
    assert cities[0] == ("地市", "参训人数", "已评定", "合格", "合格率", "学分合计", "人均学分")
    assert ("济南市", 5, 4, 3, 0.6) in [r[:5] for r in cities]
    rejected = list(wb["被退回记录"].iter_rows(values_only=True))
    assert rejected[1][1] == mask_id_number(id_number(2))
    cells = " ".join(str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    wb.close()
    assert not _full_ids(cells)

    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 4
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page  # no stylesheet to fetch: it opens offline
    assert "济南市" in page and "60.0%" in page and mask_id_number(id_number(2)) in page
    assert "<html lang='zh-CN'>" in page and "<h2>各地市合格率</h2>" in page
    assert not _full_ids(page)
    assert not _full_ids(result.stdout)

    # Human output: the paths and the figures.
    plain = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(tmp_path / "out2")])
    assert plain.exit_code == 0 and "合格 5 人 (合格率 62.5%)" in plain.stdout and ".html" in plain.stdout
    english = runner.invoke(cli, ["--config", str(cfg), "report", "--out", str(tmp_path / "out3"), "--language", "en"])
    assert english.exit_code == 0 and "passed 5 (62.5%)" in english.stdout


def test_write_report_one_programme_and_an_empty_store(store: Store, tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"database": {"url": store.url}})
    paths = write_report(settings, store, tmp_path, programme="sd-2022", today=date(2022, 12, 25))
    assert paths.xlsx.exists() and paths.html.exists() and "sd-2022" in paths.html.name
    page = paths.html.read_text(encoding="utf-8")
    assert "无数据" in page and "还剩 6 天" in page  # report.language's default, zh-CN
    english = write_report(settings, store, tmp_path / "en", programme="sd-2022", today=date(2022, 12, 25),
                           language="en").html.read_text(encoding="utf-8")
    assert "no data" in english and "6 day(s) left" in english
