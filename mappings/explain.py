"""Why a result is what it is: every reason in English and Chinese, and a readable table for one person.

The evaluator states reasons as (key, facts); the wording lives here only, so both languages stay in
step and the evaluator never formats text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.table import Table

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


def result_table(result: dict[str, Any], labels: dict[str, tuple[str, str]] | None = None) -> Table:
    """One person's result as a rich table. The ID number is shown masked."""
    who = result["teacher"]
    shown = mask_id_number(who) if result["role"] != "school_admin" else who
    table = Table(title=f"{result['programme']} · {result['role']} · {shown}", show_lines=False)
    table.add_column("item / 项目")
    table.add_column("value / 数值", justify="right")
    for name, value in result["components"].items():
        en, zh = (labels or {}).get(name, (name, ""))
        table.add_row(f"{en} / {zh}" if zh else en, fmt(value))
    table.add_row("hours / 学时", fmt(result["hours"]), end_section=False)
    table.add_row("credits / 学分", fmt(result["credits"]))
    if result.get("points") is not None:
        table.add_row("points / 总分", fmt(result["points"]))
    table.add_row("passed / 合格", "yes / 是" if result["passed"] else "no / 否")
    if result.get("grade"):
        table.add_row("grade / 等级", result["grade"])
    for en, zh in zip(result["reasons"], result.get("reasons_zh") or [""] * len(result["reasons"]), strict=False):
        table.add_row(f"[yellow]{en}[/yellow]", "")
        if zh:
            table.add_row(f"[yellow]{zh}[/yellow]", "")
    return table


def print_result(result: dict[str, Any], labels: dict[str, tuple[str, str]] | None = None,
                 console: Console | None = None) -> None:
    (console or Console()).print(result_table(result, labels))


def cycle_table(status: dict[str, Any]) -> Table:
    """One teacher's cycle (mappings.cycle.CycleStatus.as_json()) as a rich table, the ID number masked."""
    span = f"{status['start_year']}–{status['last_year']}"
    table = Table(title=f"cycle / 周期 {status['cycle']} · {span} · {mask_id_number(status['teacher'])}")
    table.add_column("item / 项目")
    table.add_column("value / 数值", justify="right")
    for y in status["years"]:
        note = "" if y["counted"] == y["hours"] else " (not counted / 不计)"
        table.add_row(f"{y['year']} {y['programme']}", f"{fmt(y['hours'])}{note}")
    table.add_row("cycle hours / 周期学时", fmt(status["cycle_hours"]))
    if status["ceiling_hours"] is not None:
        table.add_row("ceiling / 上限", fmt(status["ceiling_hours"]))
    if status["floor_hours"] is not None:
        table.add_row("floor / 下限", fmt(status["floor_hours"]))
        table.add_row("floor met / 达到下限", "yes / 是" if status["floor_met"] else
                      f"no, short by {fmt(status['short_hours'])} / 否, 差 {fmt(status['short_hours'])}")
    table.add_row("years to come / 剩余年份", ", ".join(str(y) for y in status["years_remaining"]) or "-")
    if status["topics_covered"] or status["topics_missing"]:
        table.add_row("topics covered / 已覆盖专题", ", ".join(status["topics_covered"]) or "-")
        table.add_row("topics missing / 未覆盖专题", ", ".join(status["topics_missing"]) or "-")
    for en, zh in zip(status["reasons"], status["reasons_zh"], strict=True):
        table.add_row(f"[yellow]{en}[/yellow]", "")
        table.add_row(f"[yellow]{zh}[/yellow]", "")
    return table
