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
from sqlalchemy import select

from creditbridge import __version__
from creditbridge.records import mask_id_number
from creditbridge.records.cells import xlsx_row
from creditbridge.records.outfiles import OutputFileError, prepare_directory, write_file
from creditbridge.reports import charts
from creditbridge.reports.deadlines import LIST_LIMIT, credit_result_table, deadline_warnings, scrub
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import Teacher


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
    from creditbridge.outbox.service import summary

    t = credit_result_table(store)
    total = _Group()
    # keyed by (school code, name, county, city), (county, city) and (city,)
    schools: dict[tuple[str, ...], _Group] = {}
    counties: dict[tuple[str, ...], _Group] = {}
    cities: dict[tuple[str, ...], _Group] = {}
    whole: Counter[int] = Counter()
    roles: Counter[tuple[str, bool]] = Counter()
    with store.session() as s:
        results: dict[tuple[str, str], tuple[float, bool]] = {}
        if t is not None:
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
        for groups, gkey in ((schools, ("?", "(not in roster)", "?", "?")), (counties, ("?", "?")), (cities, ("?",))):
            groups.setdefault(gkey, _Group()).add(res)
        total.add(res)
    del results

    def rows(groups: dict[tuple[str, ...], _Group], names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{**dict(zip(names, k, strict=True)), **g.as_json()} for k, g in sorted(groups.items())]

    reg = summary(store, programme=programme)
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


def _num(v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f"{v:,.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else f"{v:,}"
    return str(v)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


# --- XLSX -------------------------------------------------------------------------------------------------

_GROUP_COLUMNS = ["teachers", "evaluated", "passed", "pass_rate", "credits_total", "credits_mean"]


def write_xlsx(data: dict[str, Any], path: Path) -> Path:
    """Write the workbook as `path` (only into path's directory, atomically: see records.outfiles)."""
    return write_file(path.parent, path.name, lambda fh: _save_xlsx(data, fh))


def _save_xlsx(data: dict[str, Any], fh: BinaryIO) -> None:
    wb = Workbook(write_only=True)  # streaming: a province's worth of schools without holding cells in memory

    def sheet(title: str, header: list[str], body: Any) -> None:
        ws = wb.create_sheet(title)
        ws.append(header)
        for r in body:
            ws.append(xlsx_row(ws, [_cell(r.get(h)) for h in header]))

    totals = data["totals"]
    summary = wb.create_sheet("Summary")
    for k, v in [("programme", data["programme"] or "all"), ("generated at (UTC)", data["generated_at"]),
                 *totals.items(), *((f"registry {k}", v) for k, v in data["registry"]["by_state"].items())]:
        summary.append(xlsx_row(summary, [k, _cell(v)]))
    sheet("Cities", ["city", *_GROUP_COLUMNS], data["by_city"])
    sheet("Counties", ["city", "county", *_GROUP_COLUMNS], data["by_county"])
    sheet("Schools", ["city", "county", "school_code", "school_name", *_GROUP_COLUMNS], data["by_school"])
    sheet("Credits", ["credits", "from", "to", "teachers"], data["credits_distribution"])
    reg_cols = ["programme", "teacher", "role", "year", "version", "state", "reason", "attempts", "sent_at",
                "decided_at"]
    sheet("Rejected", reg_cols, data["registry"]["rejected"])
    sheet("Pending", reg_cols, data["registry"]["pending"])
    ws = wb.create_sheet("Deadline warnings")
    ws.append(["programme", "deadline", "days_left", "warning", "list", "teacher", "name", "school", "role",
               "state", "detail"])
    for w in data["deadlines"]:
        ws.append(xlsx_row(ws, [w["programme"], w["deadline"], w["days_left"], w["warning"], "summary", None, None,
                                None, None, None,
                                f"{w['not_passed_total']} not passed, {w['not_acknowledged_total']} not acknowledged"]))
        for r in w["not_passed"]:
            ws.append(xlsx_row(ws, [w["programme"], w["deadline"], w["days_left"], w["warning"], "not passed",
                                    r["teacher"], r["name"], r["school_name"], "teacher", r["status"],
                                    "; ".join(map(str, r["reasons"]))]))
        for r in w["not_acknowledged"]:
            ws.append(xlsx_row(ws, [w["programme"], w["deadline"], w["days_left"], w["warning"], "not acknowledged",
                                    r["teacher"], None, None, r["role"], r["state"], r["reason"]]))
    wb.save(fh)


_FILE_NAME_UNSAFE = re.compile(r"[^\w.-]")


def _cell(v: Any) -> Any:
    if isinstance(v, dict | list):
        return str(v)
    return v


# --- HTML -------------------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:1000px;color:#222;padding:0 1em}h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px
solid #ddd}table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}td.n{text-align:right}.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;
border-radius:6px;padding:.6em 1em}.card b{display:block;font-size:1.6em}.warn{color:#c0392b}.empty{color:#888}
.note{color:#666;font-size:12px}"""

HTML_ROWS = 200  # rows per table on the page; the XLSX has every row


def _table(rows: list[dict[str, Any]], columns: list[str], *, total: int | None = None) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for r in rows[:HTML_ROWS]:
        cells = []
        for c in columns:
            v = r.get(c)
            if c == "pass_rate":
                cells.append(f'<td class="n">{_pct(v)}</td>')
            elif isinstance(v, int | float) and not isinstance(v, bool):
                cells.append(f'<td class="n">{v:g}</td>')
            else:
                cells.append(f"<td>{escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    shown = min(len(rows), HTML_ROWS)
    n = total if total is not None else len(rows)
    more = f'<p class="note">{shown} of {n} shown; the XLSX has them all.</p>' if n > shown else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def render_html(data: dict[str, Any]) -> str:
    t = data["totals"]
    reg = data["registry"]
    title = f"creditbridge report: {data['programme'] or 'all programmes'}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
             f"<p class='note'>Generated {escape(data['generated_at'])} (UTC) by creditbridge "
             f"{escape(data['creditbridge'])}. ID numbers are masked.</p>"]
    cards = [("teachers", t["teachers"]), ("evaluated", t["evaluated"]), ("passed", t["passed"]),
             ("pass rate", _pct(t["pass_rate"])), ("credits", t["credits_total"]),
             ("rejected", reg["rejected_total"]), ("pending", reg["pending_total"])]
    parts.append("<div class='cards'>" + "".join(f"<div class='card'>{escape(k)}<b>{escape(_num(v))}</b></div>"
                                                  for k, v in cards) + "</div>")

    parts.append("<h2>Deadline warnings</h2>")
    for w in data["deadlines"]:
        head = (f"{escape(w['name'])} ({escape(w['programme'])}): registration deadline "
                f"{escape(str(w['deadline']))}")
        if w["days_left"] is not None:
            head += f", {w['days_left']} day(s) left" if w["days_left"] >= 0 else ", passed"
        cls = " class='warn'" if w["warning"] else ""
        parts.append(f"<h3{cls}>{head}</h3><p>{w['not_passed_total']} teacher(s) not passed, "
                     f"{w['not_acknowledged_total']} record(s) not acknowledged by the registry.</p>")
        if w["warning"]:
            parts.append("<h4>Teachers not passed</h4>" + _table(
                w["not_passed"], ["teacher", "name", "school_name", "county", "city", "credits", "status"],
                total=w["not_passed_total"]))
            parts.append("<h4>Records not acknowledged</h4>" + _table(
                w["not_acknowledged"], ["teacher", "role", "year", "version", "state", "reason"],
                total=w["not_acknowledged_total"]))

    parts.append("<h2>Pass rate by city</h2>")
    parts.append(charts.horizontal_bars([(r["city"], round((r["pass_rate"] or 0) * 100, 1)) for r in data["by_city"]],
                                        maximum=100, unit="%", highlight_below=60, title="pass rate by city"))
    parts.append(_table(data["by_city"], ["city", *_GROUP_COLUMNS]))
    parts.append("<h2>Pass rate by county</h2>")
    parts.append(charts.horizontal_bars(
        [(f"{r['city']} {r['county']}", round((r["pass_rate"] or 0) * 100, 1)) for r in data["by_county"][:HTML_ROWS]],
        maximum=100, unit="%", highlight_below=60, title="pass rate by county"))
    parts.append(_table(data["by_county"], ["city", "county", *_GROUP_COLUMNS]))
    parts.append("<h2>Pass rate by school</h2><p class='note'>Lowest pass rates first.</p>")
    by_rate = sorted(data["by_school"], key=lambda r: (r["pass_rate"] if r["pass_rate"] is not None else 2,
                                                       -r["teachers"]))
    parts.append(_table(by_rate, ["school_code", "school_name", "county", "city", *_GROUP_COLUMNS]))
    parts.append("<h2>Credits distribution</h2>")
    parts.append(charts.histogram([(r["credits"], r["teachers"]) for r in data["credits_distribution"]],
                                  title="teachers by credits"))
    parts.append("<h2>Registry</h2>")
    parts.append(charts.horizontal_bars(sorted(reg["by_state"].items()), maximum=max(reg["by_state"].values(),
                                                                                      default=0),
                                        title="submissions by state"))
    cols = ["programme", "teacher", "role", "year", "version", "state", "reason", "attempts", "decided_at"]
    parts.append("<h3>Rejected</h3>" + _table(reg["rejected"], cols, total=reg["rejected_total"]))
    parts.append("<h3>Pending</h3>" + _table(reg["pending"], cols, total=reg["pending_total"]))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(settings: Settings, store: Store, out_dir: str | Path, *, programme: str | None = None,
                 today: date | None = None) -> ReportPaths:
    data = report_data(settings, store, programme=programme, today=today)
    return write_files(data, out_dir)


def write_files(data: dict[str, Any], out_dir: str | Path) -> ReportPaths:
    """Write the XLSX and the HTML into `out_dir` (created if missing) and nowhere else: no file name is
    followed as a symbolic link, and a failure leaves neither file half-written (OutputFileError)."""
    out = prepare_directory(out_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    # The programme comes from --programme: only word characters, dots and dashes go into a file name.
    programme = _FILE_NAME_UNSAFE.sub("_", data["programme"] or "all")
    stem = f"credit-report-{programme}-{stamp}"
    page = render_html(data).encode("utf-8")
    xlsx = write_xlsx(data, out / f"{stem}.xlsx")
    try:
        html = write_file(out, f"{stem}.html", lambda fh: fh.write(page))
    except OutputFileError:
        xlsx.unlink(missing_ok=True)  # the pair or nothing: a lone workbook would pass for the whole report
        raise
    return ReportPaths(xlsx=xlsx, html=html)
