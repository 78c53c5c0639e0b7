"""Why a result is what it is: every reason in English and Chinese, and a readable table for one person in the
report's language (report.language; creditbridge.i18n holds the table's words).

The evaluator states reasons as (key, facts); the wording lives here only, so both languages stay in
step and the evaluator never formats text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from creditbridge import i18n
from creditbridge.i18n import Words
from creditbridge.records.id_number import mask_id_number

UNIT = {"hours": ("hours", "学时"), "minutes": ("minutes", "分钟"), "score": ("score", "分"),
        "count": ("passed", "合格数"), "pass_rate": ("%", "%"), "share_of_teachers": ("%", "%")}

_FIELD_ZH = {"stage": "学段", "subject": "学科", "city": "地市"}


@lru_cache(maxsize=4096)
def fmt(x: float | int | None) -> str:
    """12 → "12", 12.5 → "12.5", 12.345 → "12.35"."""
    if x is None:
        return "-"
    r = round(float(x), 2)
    return str(int(r)) if r == int(r) else f"{r:.2f}".rstrip("0").rstrip(".")


def render(key: str, f: dict[str, Any]) -> tuple[str, str]:
    """One reason as (English, Chinese)."""
    if key == "below_minimum":
        en_unit, zh_unit = UNIT.get(f["measure"], ("", ""))
        return (f"{f['label_en']} {en_unit} {fmt(f['value'])} < {fmt(f['minimum'])}",
                f"{f['label_zh']}{zh_unit} {fmt(f['value'])} < {fmt(f['minimum'])}")
    if key == "too_few":
        return (f"{f['label_en']}: {f['count']} passed < {f['wanted']}",
                f"{f['label_zh']}: 合格 {f['count']} 个 < {f['wanted']}")
    if key == "not_passed":
        return (f"{f['item_en']} {f['code']} not passed", f"{f['item_zh']} {f['code']} 未合格")
    if key == "outside_window":
        when_en, when_zh = ("after", "晚于") if f["side"] > 0 else ("before", "早于")
        return (f"record {when_en} the window: {f['code']} ({f['start']} – {f['end']}), not counted",
                f"记录{when_zh}学习时间窗口: {f['code']} ({f['start']} – {f['end']}), 不计")
    if key == "not_assigned":
        return (f"{f['item_en']} {f['code']} not assigned to this teacher: not counted",
                f"{f['item_zh']} {f['code']} 未分配给该教师, 不计")
    if key == "outside_topics":
        return (f"{f['item_en']} {f['code']} outside the school's topics ({f['topic']}): not counted",
                f"{f['item_zh']} {f['code']} 不在学校所选专题内 ({f['topic']}), 不计")
    if key == "not_for_teacher":
        return (f"{f['item_en']} {f['code']} is not for the teacher's {f['field']}: not counted",
                f"{f['item_zh']} {f['code']} 与教师的{_FIELD_ZH[f['field']]}不符, 不计")
    if key == "total_below":
        return (f"total hours {fmt(f['value'])} < {fmt(f['minimum'])}",
                f"总学时 {fmt(f['value'])} < {fmt(f['minimum'])}")
    if key == "points_below":
        return (f"points {fmt(f['value'])} < pass mark {fmt(f['minimum'])}",
                f"总分 {fmt(f['value'])} < 合格线 {fmt(f['minimum'])}")
    if key == "group_below":
        return (f"{f['label_en']} hours {fmt(f['value'])} < {fmt(f['minimum'])}",
                f"{f['label_zh']}学时 {fmt(f['value'])} < {fmt(f['minimum'])}")
    if key == "no_teachers":
        return ("no teachers in the school: pass rate 0", "学校无参训教师: 合格率 0")
    if key == "cycle_year_not_counted":
        return (f"{f['year']} ({f['programme']}) not passed: its {fmt(f['hours'])} hours do not count in the cycle",
                f"{f['year']}年 ({f['programme']}) 未合格: {fmt(f['hours'])} 学时不计入周期")
    if key == "cycle_above_ceiling":
        return (f"cycle {f['cycle']} hours {fmt(f['value'])} above the ceiling {fmt(f['ceiling'])}: "
                f"{fmt(f['excess'])} not counted",
                f"周期 {f['cycle']} 学时 {fmt(f['value'])} 超过上限 {fmt(f['ceiling'])}: {fmt(f['excess'])} 不计")
    if key == "cycle_below_floor":
        left_en = f"{f['remaining']} year(s) to come" if f["remaining"] else "no year to come"
        left_zh = f"还剩 {f['remaining']} 年" if f["remaining"] else "周期已无剩余年份"
        return (f"cycle {f['cycle']} hours {fmt(f['value'])} < {fmt(f['floor'])}: short by {fmt(f['short'])}, "
                f"{left_en}",
                f"周期 {f['cycle']} 学时 {fmt(f['value'])} < {fmt(f['floor'])}: 差 {fmt(f['short'])}, {left_zh}")
    if key == "cycle_topics_missing":
        shown = ", ".join(f["topics"])
        return (f"cycle {f['cycle']} topics not covered yet: {shown}", f"周期 {f['cycle']} 尚未覆盖的专题: {shown}")
    raise KeyError(key)


def result_table(result: dict[str, Any], labels: dict[str, tuple[str, str]] | None = None,
                 words: Words | None = None) -> Table:
    """One person's result as a rich table, in the report's language (report.language, default zh-CN). The ID
    number is shown masked."""
    w = words or i18n.words(i18n.DEFAULT_LANGUAGE)
    zh = w.language == "zh-CN"
    who = result["teacher"]
    shown = mask_id_number(who) if result["role"] != "school_admin" else who
    table = Table(title=f"{result['programme']} · {w.value('role', result['role'])} · {shown}", show_lines=False)
    table.add_column(w("explain.item"))
    table.add_column(w("explain.value"), justify="right")
    for name, value in result["components"].items():
        en, zh_label = (labels or {}).get(name, (name, ""))
        table.add_row((zh_label or en) if zh else en, fmt(value))
    table.add_row(w("explain.hours"), fmt(result["hours"]), end_section=False)
    table.add_row(w("explain.credits"), fmt(result["credits"]))
    if result.get("points") is not None:
        table.add_row(w("explain.points"), fmt(result["points"]))
    table.add_row(w("explain.passed"), w("yes") if result["passed"] else w("no"))
    if result.get("grade"):
        table.add_row(w("explain.grade"), result["grade"])
    reasons = result["reasons"]
    if zh and result.get("reasons_zh"):
        reasons = result["reasons_zh"]
    for reason in reasons:
        table.add_row(f"[yellow]{escape(reason)}[/yellow]", "")
    return table


def print_result(result: dict[str, Any], labels: dict[str, tuple[str, str]] | None = None,
                 console: Console | None = None, words: Words | None = None) -> None:
    (console or Console()).print(result_table(result, labels, words))


def cycle_table(status: dict[str, Any], words: Words | None = None) -> Table:
    """One teacher's cycle (mappings.cycle.CycleStatus.as_json()) as a rich table in the report's language, the
    ID number masked."""
    w = words or i18n.words(i18n.DEFAULT_LANGUAGE)
    span = f"{status['start_year']}–{status['last_year']}"
    table = Table(title=f"{w('explain.cycle')} {status['cycle']} · {span} · {mask_id_number(status['teacher'])}")
    table.add_column(w("explain.item"))
    table.add_column(w("explain.value"), justify="right")
    for y in status["years"]:
        note = "" if y["counted"] == y["hours"] else w("explain.not_counted")
        table.add_row(f"{y['year']} {y['programme']}", f"{fmt(y['hours'])}{note}")
    table.add_row(w("explain.cycle_hours"), fmt(status["cycle_hours"]))
    if status["ceiling_hours"] is not None:
        table.add_row(w("explain.ceiling"), fmt(status["ceiling_hours"]))
    if status["floor_hours"] is not None:
        table.add_row(w("explain.floor"), fmt(status["floor_hours"]))
        table.add_row(w("explain.floor_met"), w("yes") if status["floor_met"] else
                      w("explain.short_by", hours=fmt(status["short_hours"])))
    table.add_row(w("explain.years_to_come"), ", ".join(str(y) for y in status["years_remaining"]) or "-")
    if status["topics_covered"] or status["topics_missing"]:
        table.add_row(w("explain.topics_covered"), ", ".join(status["topics_covered"]) or "-")
        table.add_row(w("explain.topics_missing"), ", ".join(status["topics_missing"]) or "-")
    for reason in status["reasons_zh"] if w.language == "zh-CN" else status["reasons"]:
        table.add_row(f"[yellow]{escape(reason)}[/yellow]", "")
    return table
