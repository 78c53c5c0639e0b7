"""The credit report: pass rate by school, county and city, the credits distribution, rejected and pending
registry records, deadline warnings. `report_data` gives the figures (for --json); `write_report` writes them
as an XLSX workbook (one sheet per section) and one self-contained HTML page with inline SVG charts.

A teacher counts from the roster (active teachers of the programme) joined with their credit result (role
teacher): no result yet counts as not passed. ID numbers are masked everywhere in the output."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from sqlalchemy import select

from creditbridge import __version__, i18n
from creditbridge.i18n import Words
from creditbridge.outbox.service import summary as registry_summary
from creditbridge.records import mask_id_number
from creditbridge.records.cells import xlsx_row
from creditbridge.records.outfiles import OutputFileError, prepare_directory, write_file
from creditbridge.reports import charts
from creditbridge.reports.deadlines import LIST_LIMIT, deadline_warnings, scrub
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.credits import CreditResult


@dataclass(frozen=True)
class ReportPaths:
    xlsx: Path
    html: Path


class _Group:
    __slots__ = ("credits", "evaluated", "passed", "teachers")

    def __init__(self) -> None:
        self.teachers = self.evaluated = self.passed = 0
        self.credits = 0.0

    def add(self, result: tuple[float, bool] | None) -> None:
        self.teachers += 1
        if result is not None:
            self.evaluated += 1
            self.passed += 1 if result[1] else 0
            self.credits += result[0]

    def as_json(self) -> dict[str, Any]:
        return {"teachers": self.teachers, "evaluated": self.evaluated, "passed": self.passed,
                "pass_rate": round(self.passed / self.teachers, 4) if self.teachers else None,
                "credits_total": round(self.credits, 2),
                "credits_mean": round(self.credits / self.evaluated, 2) if self.evaluated else None}


def _distribution(whole: Counter[int]) -> list[dict[str, Any]]:
    """Whole-credit buckets (from the count per whole credit); with a wide range, at most 30 equal buckets."""
    if not whole:
        return []
    lo, hi = min(whole), max(whole)
    width = max(1, math.ceil((hi - lo + 1) / 30))
    counts: Counter[int] = Counter()
    for v, n in whole.items():
        counts[(v - lo) // width] += n
    out = []
    for b in range((hi - lo) // width + 1):
        start = lo + b * width
        label = f"{start}" if width == 1 else f"{start}–{start + width - 1}"
        out.append({"credits": label, "from": start, "to": start + width, "teachers": counts.get(b, 0)})
    return out


def report_data(settings: Settings, store: Store, *, programme: str | None = None, today: date | None = None,
                limit: int = LIST_LIMIT) -> dict[str, Any]:
    """The report's figures. Streams the roster; holds one (credits, passed) pair per result and one counter
    per school, county and city, so a province of a million teachers fits in a few hundred MB."""
    t = CreditResult.__table__
    total = _Group()
    schools: dict[tuple[str, ...], _Group] = {}
    counties: dict[tuple[str, ...], _Group] = {}
    cities: dict[tuple[str, ...], _Group] = {}
    whole: Counter[int] = Counter()
    roles: Counter[tuple[str, bool]] = Counter()
    with store.session() as s:
        results: dict[tuple[str, str], tuple[float, bool]] = {}
        rq = select(t.c.programme, t.c.teacher, t.c.credits, t.c.passed).where(t.c.role == "teacher")
        if programme:
            rq = rq.where(t.c.programme == programme)
        for r in s.execute(rq):
            credits = float(r.credits or 0)
            results[(r.programme, r.teacher)] = (credits, bool(r.passed))
            whole[math.floor(credits)] += 1
        oq = select(t.c.role, t.c.passed).where(t.c.role != "teacher")
        if programme:
            oq = oq.where(t.c.programme == programme)
        roles = Counter((r.role, bool(r.passed)) for r in s.execute(oq))
        q = select(Teacher.programme, Teacher.id_number, Teacher.school_code, Teacher.school_name, Teacher.county,
                   Teacher.city, Teacher.status)
        if programme:
            q = q.where(Teacher.programme == programme)
        for tr in s.execute(q):
            res = results.pop((tr.programme, tr.id_number), None)
            if tr.status != "active" and res is None:
                continue  # a suspended teacher without a result is no longer expected to pass
            for groups, gkey in ((schools, (tr.school_code, tr.school_name, tr.county, tr.city)),
                                 (counties, (tr.county, tr.city)), (cities, (tr.city,))):
                groups.setdefault(gkey, _Group()).add(res)
            total.add(res)
    for res in results.values():  # what is left: results of teachers not in the roster
        for groups, gkey in ((schools, ("?", NOT_IN_ROSTER, "?", "?")), (counties, ("?", "?")), (cities, ("?",))):
            groups.setdefault(gkey, _Group()).add(res)
        total.add(res)
    del results

    def rows(groups: dict[tuple[str, ...], _Group], names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{**dict(zip(names, k, strict=True)), **g.as_json()} for k, g in sorted(groups.items())]

    reg = registry_summary(store, programme=programme)
    warnings = deadline_warnings(settings, store, today=today, programme=programme, limit=limit)

    def registry_row(r: dict[str, Any]) -> dict[str, Any]:
        return {"programme": r["programme"], "teacher": mask_id_number(r["teacher"]), "role": r["role"],
                "year": r["year"], "version": r["version"], "state": r["state"], "reason": scrub(r["reason"]),
                "attempts": r["attempts"], "sent_at": _iso(r["sent_at"]), "decided_at": _iso(r["decided_at"])}

    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "creditbridge": __version__,
        "programme": programme,
        "totals": total.as_json(),
        "by_city": rows(cities, ("city",)),
        "by_county": rows(counties, ("county", "city")),
        "by_school": rows(schools, ("school_code", "school_name", "county", "city")),
        "credits_distribution": _distribution(whole),
        "other_roles": [{"role": role, "passed": passed, "count": n} for (role, passed), n in sorted(roles.items())],
        "registry": {"by_state": reg["by_state"],
                     "rejected_total": len(reg["rejected"]),
                     "rejected": [registry_row(r) for r in reg["rejected"][:limit]],
                     "pending_total": len(reg["pending"]),
                     "pending": [registry_row(r) for r in reg["pending"][:limit]]},
        "deadlines": warnings,
    }


def _iso(v: Any) -> str | None:
    return v.isoformat() if isinstance(v, datetime | date) else v


# --- XLSX -------------------------------------------------------------------------------------------------

_GROUP_COLUMNS = ["teachers", "evaluated", "passed", "pass_rate", "credits_total", "credits_mean"]
_REGISTRY_COLUMNS = ["programme", "teacher", "role", "year", "version", "state", "reason", "attempts", "sent_at",
                     "decided_at"]
# Data values that are codes, shown to people as the catalogue's word (column -> catalogue prefix).
_CODED = {"state": "state", "status": "status", "role": "role", "list": "list"}
NOT_IN_ROSTER = "(not in roster)"


def write_xlsx(data: dict[str, Any], path: Path, words: Words | None = None) -> Path:
    """Write the workbook as `path` (only into path's directory, atomically: see records.outfiles)."""
    w = words or i18n.words(i18n.DEFAULT_LANGUAGE)
    return write_file(path.parent, path.name, lambda fh: _save_xlsx(data, fh, w))


def _save_xlsx(data: dict[str, Any], fh: BinaryIO, w: Words) -> None:
    wb = Workbook(write_only=True)  # streaming: a province's worth of schools without holding cells in memory

    def cell(ws: Any, column: str, v: Any) -> Any:
        """The figure stays a number or a date (equal in every language); only its shown format is the
        language's. Codes become words; text goes through xlsx_row (formula-safe) afterwards."""
        if column == "pass_rate" and isinstance(v, int | float):
            return _formatted(ws, v, "0.0%")
        if column == "deadline" and isinstance(v, str):
            return _formatted(ws, date.fromisoformat(v), w.xlsx_date_format)
        if column in ("sent_at", "decided_at", "generated_at") and isinstance(v, str):
            # Excel has no time zones: the moment in UTC, as the column says.
            return _formatted(ws, datetime.fromisoformat(v).astimezone(UTC).replace(tzinfo=None),
                              w.xlsx_datetime_format)
        if column in _CODED and isinstance(v, str):
            return w.value(_CODED[column], v)
        if column == "school_name" and v == NOT_IN_ROSTER:
            return w("not in roster")
        if isinstance(v, bool):
            return w("yes") if v else w("no")
        if isinstance(v, dict | list):
            return str(v)
        return v

    def sheet(key: str, columns: list[str], body: Any) -> None:
        ws = wb.create_sheet(w(f"sheet.{key}"))
        ws.append([w(f"col.{c}") for c in columns])
        for r in body:
            ws.append(xlsx_row(ws, [cell(ws, c, r.get(c)) for c in columns]))

    summary = wb.create_sheet(w("sheet.summary"))
    summary.append([w("col.item"), w("col.value")])
    rows: list[tuple[str, str, Any]] = [
        ("col.programme", "programme", data["programme"] or w("all programmes")),
        ("report.generated_at", "generated_at", data["generated_at"]),
        *((f"col.{k}", k, v) for k, v in data["totals"].items())]
    for key, column, v in rows:
        summary.append(xlsx_row(summary, [w(key), cell(summary, column, v)]))
    for state, n in data["registry"]["by_state"].items():
        summary.append(xlsx_row(summary, [w("report.registry_state", state=w.value("state", state)), n]))
    sheet("cities", ["city", *_GROUP_COLUMNS], data["by_city"])
    sheet("counties", ["city", "county", *_GROUP_COLUMNS], data["by_county"])
    sheet("schools", ["city", "county", "school_code", "school_name", *_GROUP_COLUMNS], data["by_school"])
    sheet("credits", ["credits", "from", "to", "teachers"], data["credits_distribution"])
    sheet("rejected", _REGISTRY_COLUMNS, data["registry"]["rejected"])
    sheet("pending", _REGISTRY_COLUMNS, data["registry"]["pending"])
    columns = ["programme", "deadline", "days_left", "warning", "list", "teacher", "name", "school", "role",
               "state", "detail"]
    rows_out: list[dict[str, Any]] = []
    for wr in data["deadlines"]:
        head = {k: wr[k] for k in ("programme", "deadline", "days_left", "warning")}
        rows_out.append({**head, "list": "summary",
                         "detail": w("deadline.detail", not_passed=wr["not_passed_total"],
                                     not_acknowledged=wr["not_acknowledged_total"])})
        rows_out += [{**head, "list": "not passed", "teacher": r["teacher"], "name": r["name"],
                      "school": r["school_name"], "role": "teacher", "state": w.value("status", r["status"]),
                      "detail": "; ".join(map(str, r["reasons"]))} for r in wr["not_passed"]]
        rows_out += [{**head, "list": "not acknowledged", "teacher": r["teacher"], "role": r["role"],
                      "state": r["state"], "detail": r["reason"]} for r in wr["not_acknowledged"]]
    sheet("deadlines", columns, rows_out)
    wb.save(fh)


def _formatted(ws: Any, value: Any, number_format: str) -> Cell:  # WriteOnlyCell is a function making a Cell
    c = WriteOnlyCell(ws, value=value)
    c.number_format = number_format
    return c


_FILE_NAME_UNSAFE = re.compile(r"[^\w.-]")


# --- HTML -------------------------------------------------------------------------------------------------

# Fonts named for each system so Chinese renders in a Simplified Chinese face everywhere (a generic sans-serif
# lets Linux pick a Japanese variant of the same characters): macOS, Windows, Linux (Noto / Source Han / WenQuanYi).
FONT_STACK = ('"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Source Han Sans SC",'
              '"WenQuanYi Micro Hei",system-ui,-apple-system,"Segoe UI",sans-serif')
_CSS = f"""body{{font-family:{FONT_STACK};
margin:2em auto;max-width:1000px;color:#222;padding:0 1em}}h1{{font-size:1.5em}}h2{{margin-top:2em;border-bottom:1px
solid #ddd}}table{{border-collapse:collapse;font-size:13px;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:3px 8px;
text-align:left}}td.n{{text-align:right}}.cards{{display:flex;gap:1em;flex-wrap:wrap}}.card{{border:1px solid #ddd;
border-radius:6px;padding:.6em 1em}}.card b{{display:block;font-size:1.6em}}.warn{{color:#c0392b}}.empty{{color:#888}}
.note{{color:#666;font-size:12px}}svg text{{font-family:inherit}}"""

HTML_ROWS = 200  # rows per table on the page; the XLSX has every row
SCHOOL_BARS = 30  # schools in the page's chart (lowest pass rates); the table lists HTML_ROWS


def _shown(w: Words, column: str, v: Any) -> tuple[str, bool]:
    """(text, is a figure) of one value on the page, in the report's language."""
    if v is None:
        return "", False
    if column == "pass_rate":
        return w.percent(v), True
    if column == "deadline":
        return w.date(v), False
    if column in ("sent_at", "decided_at") and isinstance(v, str):
        return w.datetime(v), False
    if column in _CODED and isinstance(v, str):
        return w.value(_CODED[column], v), False
    if column == "school_name" and v == NOT_IN_ROSTER:
        return w("not in roster"), False
    if column == "year" and isinstance(v, int):
        return str(v), True  # a year, not an amount: no grouping separator
    if isinstance(v, int | float) and not isinstance(v, bool):
        return w.number(v), True
    return str(v), False


def _table(w: Words, rows: list[dict[str, Any]], columns: list[str], *, total: int | None = None) -> str:
    if not rows:
        return f'<p class="empty">{escape(w("none"))}</p>'
    head = "".join(f"<th>{escape(w(f'col.{c}'))}</th>" for c in columns)
    body = []
    for r in rows[:HTML_ROWS]:
        cells = []
        for c in columns:
            text, figure = _shown(w, c, r.get(c))
            cells.append(f'<td class="n">{escape(text)}</td>' if figure else f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    shown = min(len(rows), HTML_ROWS)
    n = total if total is not None else len(rows)
    more = (f'<p class="note">{escape(w("note.shown", shown=w.number(shown), total=w.number(n)))}</p>'
            if n > shown else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def render_html(data: dict[str, Any], words: Words | None = None) -> str:
    w = words or i18n.words(i18n.DEFAULT_LANGUAGE)
    t = data["totals"]
    reg = data["registry"]

    def rate_bars(items: list[tuple[str, float | None]], title: str) -> str:
        return charts.horizontal_bars([(label, round((rate or 0) * 100, 1)) for label, rate in items],
                                      maximum=100, highlight_below=60, title=title, empty=w("no data"),
                                      shown=lambda v: w.percent(v / 100), unit="")

    title = w("report.title", programme=data["programme"] or w("all programmes"))
    generated = w("report.generated", when=w.datetime(data["generated_at"]), version=data["creditbridge"])
    parts = [f"<!DOCTYPE html><html lang='{w.language}'><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
             f"<p class='note'>{escape(generated)}</p>"]
    cards = [(w("col.teachers"), w.number(t["teachers"])), (w("col.evaluated"), w.number(t["evaluated"])),
             (w("col.passed"), w.number(t["passed"])), (w("col.pass_rate"), w.percent(t["pass_rate"])),
             (w("col.credits_total"), w.number(t["credits_total"])),
             (w("card.rejected"), w.number(reg["rejected_total"])), (w("card.pending"), w.number(reg["pending_total"]))]
    parts.append("<div class='cards'>" + "".join(f"<div class='card'>{escape(k)}<b>{escape(v)}</b></div>"
                                                  for k, v in cards) + "</div>")

    parts.append(f"<h2>{escape(w('h.deadlines'))}</h2>")
    for dl in data["deadlines"]:
        head = w("deadline.head", name=dl["name_en"] if w.language == "en" else dl["name"], programme=dl["programme"],
                 deadline=w.date(dl["deadline"]) if dl["deadline"] else "-")
        if dl["days_left"] is not None:
            head += (w("deadline.days_left", days=w.number(dl["days_left"])) if dl["days_left"] >= 0
                     else w("deadline.passed"))
        cls = " class='warn'" if dl["warning"] else ""
        counts = w("deadline.counts", not_passed=w.number(dl["not_passed_total"]),
                   not_acknowledged=w.number(dl["not_acknowledged_total"]))
        parts.append(f"<h3{cls}>{escape(head)}</h3><p>{escape(counts)}</p>")
        if dl["warning"]:
            parts.append(f"<h4>{escape(w('h.not_passed'))}</h4>" + _table(
                w, dl["not_passed"], ["teacher", "name", "school_name", "county", "city", "credits", "status"],
                total=dl["not_passed_total"]))
            parts.append(f"<h4>{escape(w('h.not_acknowledged'))}</h4>" + _table(
                w, dl["not_acknowledged"], ["teacher", "role", "year", "version", "state", "reason"],
                total=dl["not_acknowledged_total"]))

    parts.append(f"<h2>{escape(w('h.by_city'))}</h2>")
    parts.append(rate_bars([(r["city"], r["pass_rate"]) for r in data["by_city"]], w("chart.by_city")))
    parts.append(_table(w, data["by_city"], ["city", *_GROUP_COLUMNS]))
    parts.append(f"<h2>{escape(w('h.by_county'))}</h2>")
    parts.append(rate_bars([(f"{r['city']} {r['county']}", r["pass_rate"]) for r in data["by_county"][:HTML_ROWS]],
                           w("chart.by_county")))
    parts.append(_table(w, data["by_county"], ["city", "county", *_GROUP_COLUMNS]))
    parts.append(f"<h2>{escape(w('h.by_school'))}</h2><p class='note'>{escape(w('note.lowest_first'))}</p>")
    by_rate = sorted(data["by_school"], key=lambda r: (r["pass_rate"] if r["pass_rate"] is not None else 2,
                                                       -r["teachers"]))
    lowest = by_rate[:SCHOOL_BARS]
    if len(by_rate) > len(lowest):
        parts.append(f"<p class='note'>{escape(w('note.lowest_chart', n=len(lowest)))}</p>")
    parts.append(rate_bars([(_shown(w, "school_name", r["school_name"])[0], r["pass_rate"]) for r in lowest],
                           w("chart.by_school")))
    parts.append(_table(w, by_rate, ["school_code", "school_name", "county", "city", *_GROUP_COLUMNS]))
    parts.append(f"<h2>{escape(w('h.distribution'))}</h2>")
    parts.append(charts.histogram([(r["credits"], r["teachers"]) for r in data["credits_distribution"]],
                                  title=w("chart.distribution"), empty=w("no data"), shown=w.number))
    parts.append(f"<h2>{escape(w('h.registry'))}</h2>")
    parts.append(charts.horizontal_bars([(w.value("state", k), v) for k, v in sorted(reg["by_state"].items())],
                                        maximum=max(reg["by_state"].values(), default=0),
                                        title=w("chart.by_state"), empty=w("no data"), shown=w.number))
    cols = ["programme", "teacher", "role", "year", "version", "state", "reason", "attempts", "decided_at"]
    parts.append(f"<h3>{escape(w('h.rejected'))}</h3>" + _table(w, reg["rejected"], cols, total=reg["rejected_total"]))
    parts.append(f"<h3>{escape(w('h.pending'))}</h3>" + _table(w, reg["pending"], cols, total=reg["pending_total"]))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(settings: Settings, store: Store, out_dir: str | Path, *, programme: str | None = None,
                 today: date | None = None, language: str | None = None) -> ReportPaths:
    """Both files in `language` (default: the setting report.language)."""
    data = report_data(settings, store, programme=programme, today=today)
    return write_files(data, out_dir, language=language or settings.report.language)


def write_files(data: dict[str, Any], out_dir: str | Path, *, language: str = i18n.DEFAULT_LANGUAGE) -> ReportPaths:
    """Write the XLSX and the HTML into `out_dir` (created if missing) and nowhere else: no file name is
    followed as a symbolic link, and a failure leaves neither file half-written (OutputFileError). An unknown
    `language` is an error (creditbridge.i18n.LanguageError) before anything is written."""
    w = i18n.words(language)
    out = prepare_directory(out_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    # The programme comes from --programme: only word characters, dots and dashes go into a file name.
    programme = _FILE_NAME_UNSAFE.sub("_", data["programme"] or "all")
    stem = f"credit-report-{programme}-{stamp}"
    page = render_html(data, w).encode("utf-8")
    xlsx = write_xlsx(data, out / f"{stem}.xlsx", w)
    try:
        html = write_file(out, f"{stem}.html", lambda fh: fh.write(page))
    except OutputFileError:
        xlsx.unlink(missing_ok=True)  # the pair or nothing: a lone workbook would pass for the whole report
        raise
    return ReportPaths(xlsx=xlsx, html=html)
