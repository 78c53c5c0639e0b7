"""The offline HTML report in a real browser (issue #18): Debian's headless Chromium opens the file, in zh-CN
and in en, with no console error and no network request; the rendered text shows the headings and a school's
row; the charts' SVG has one bar per city, county, school, credit bucket and registry state, at the expected
length. One screenshot per language is kept as an artefact of the run (not committed): under
$CREDITBRIDGE_TEST_ARTIFACTS when set, else in pytest's temporary directory; the path is printed.

In CI (CI=true) a missing chromium fails the test; elsewhere it is skipped, saying what to install."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from browser import Browser, chromium, find_chromium
from test_report import _seed

from creditbridge.i18n import LANGUAGES, words
from creditbridge.reports import charts
from creditbridge.reports.build import report_data, write_report
from creditbridge.settings import load_settings
from creditbridge.store import open_store

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}  # as tests/conftest.py (shadowed here by reports')
# The report's horizontal bars: the plot is the chart's width less the labels and the figure at the end.
PLOT = 640 - 200 - 70


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    path = find_chromium()
    if path is None:
        message = "no chromium to render the report (Debian: apt-get install chromium fonts-noto-cjk)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with chromium(path, tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """The same store's report in each language: {language: (html path, report data)}."""
    base = tmp_path_factory.mktemp("browser-report")
    store = open_store(f"sqlite:///{base / 'state.db'}")
    try:
        _seed(store)
        settings = load_settings(None, env={}, overrides={"database": {"url": store.url}})
        today = date(2022, 12, 20)  # inside the warning window: the lists of teachers are on the page
        data = report_data(settings, store, today=today)
        return {lang: (write_report(settings, store, base / lang, today=today, language=lang).html, data)
                for lang in LANGUAGES}
    finally:
        store.dispose()


def _artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("CREDITBRIDGE_TEST_ARTIFACTS")
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "artefacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_BARS = """(label) => {
  const svg = document.querySelector(`svg[aria-label="${label}"]`);
  if (!svg) return null;
  return [...svg.querySelectorAll('rect')].map(r => ({
    title: r.querySelector('title').textContent, width: r.getBoundingClientRect().width,
    height: r.getBoundingClientRect().height}));
}"""

_ROW = """(first) => [...document.querySelectorAll('tr')]
  .filter(tr => tr.cells.length && tr.cells[0].innerText === first)
  .map(tr => [...tr.cells].map(td => td.innerText))"""


def _installed_font(family: str) -> bool:
    try:
        listed = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return family in listed


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_report_renders_offline_in_chromium(browser: Browser, reports: dict[str, tuple[Path, dict]],
                                                language: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    w = words(language)
    html, data = reports[language]
    page = browser.new_page()
    visit = page.open(html.as_uri())

    assert visit.errors == [], visit.errors
    assert [u for u in visit.requests if u != html.as_uri()] == [], "the page must fetch nothing"
    assert page.evaluate("document.documentElement.lang") == language

    text = page.evaluate("document.body.innerText")
    assert page.evaluate("document.querySelector('h1').innerText") == w("report.title",
                                                                          programme=w("all programmes"))
    headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.innerText)")
    assert headings == [w(k) for k in ("h.deadlines", "h.by_city", "h.by_county", "h.by_school", "h.distribution",
                                       "h.registry")]
    for field_name in ("pass_rate", "credits_total", "credits_mean", "school_name"):
        assert field_name not in text
    # A school's row, as a reader sees it: words and figures in the language's format.
    s1 = next(r for r in data["by_school"] if r["school_code"] == "S1")
    (row,) = page.evaluate(f"({_ROW})('S1')")
    assert row == ["S1", "S1 学校", "历下区", "济南市", "3", "3", "2", w.percent(s1["pass_rate"]), "63", "21"]
    assert row[7] == "66.7%"
    deadline = w.date("2022-12-31")
    assert deadline in text and (deadline == "2022年12月31日") == (language == "zh-CN")

    # The charts: one bar per item, a known school's bar labelled and as long as its pass rate.
    by_school = page.evaluate(f"({_BARS})({w('chart.by_school')!r})")
    assert [b["title"] for b in by_school] == ["S2 学校: 50.0%", "S1 学校: 66.7%", "S3 学校: 66.7%"]
    assert abs(by_school[0]["width"] - 0.5 * PLOT) < 1 and abs(by_school[1]["width"] - 0.667 * PLOT) < 1
    assert all(b["height"] > 10 for b in by_school)
    by_city = page.evaluate(f"({_BARS})({w('chart.by_city')!r})")
    assert [b["title"] for b in by_city] == ["济南市: 60.0%", "青岛市: 66.7%"]
    assert abs(by_city[0]["width"] - 0.6 * PLOT) < 1
    assert len(page.evaluate(f"({_BARS})({w('chart.by_county')!r})")) == len(data["by_county"]) == 3
    histogram = page.evaluate(f"({_BARS})({w('chart.distribution')!r})")
    assert len(histogram) == len(data["credits_distribution"]) == 29  # whole credits 0 to 28
    assert [b["title"] for b in histogram if b["title"].startswith("26:")] == ["26: 2"]
    states = page.evaluate(f"({_BARS})({w('chart.by_state')!r})")
    assert sorted(b["title"] for b in states) == sorted(f"{w.value('state', s)}: 1" for s in
                                                        ("acknowledged", "rejected", "pending", "sent"))
    assert charts.BAR  # the colours the test does not pin: any theme may change them

    # Chinese is drawn by a Simplified Chinese face of the CSS font stack, not a fallback's Japanese glyphs.
    fonts = page.fonts_of("h1" if language == "zh-CN" else "table td:nth-child(2)")
    assert fonts and not [f for f in fonts if f.endswith((" JP", " KR", " TC", " HK"))], fonts
    if _installed_font("Noto Sans CJK SC"):
        assert "Noto Sans CJK SC" in fonts, fonts

    shot = page.screenshot(_artefacts(tmp_path_factory) / f"credit-report-{language}.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot ({language}): {shot}")


def test_the_browser_check_sees_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    """The checks above can fail: a page with a script error, a console error and a fetched image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png'>"
                   "<script>console.error('boom'); undefined_function();</script></body></html>", encoding="utf-8")
    visit = browser.new_page().open(bad.as_uri())
    assert "http://127.0.0.1:9/x.png" in visit.requests
    assert any("boom" in e for e in visit.errors) and any(e.startswith("exception:") for e in visit.errors)
