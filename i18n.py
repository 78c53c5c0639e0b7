"""The one home of the words people read in creditbridge's reports (setting `report.language`): the credit
report (HTML and XLSX), the sync run's XLSX and `credits explain`'s tables, in Simplified Chinese (`zh-CN`, the
default: the readers are school, county and city administrators) or English (`en`).

Every text is one entry of MESSAGES, keyed by what it is (`col.<field>` for a column of the report's data,
`state.<state>` for a registry state...), with its two translations side by side, so a missing translation is
seen here and a test checks each entry has both. Machine output (`--json` keys and values, logs) stays as it is.

Numbers, percentages and dates go through Babel (CLDR data), not hand-written format strings: 2022年12月31日 in
Chinese, Dec 31, 2022 in English; the grouping and decimal signs are the locale's.

A Python catalogue rather than gettext .po/.mo files: two languages, a few hundred short texts, and no
translator workflow to serve; a compiled .mo would add a build step to the package for no reader's gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, get_args

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import parse_pattern

from creditbridge import CreditbridgeError

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "zh-CN"

# key: (zh-CN, en). `{name}` fields are filled by str.format.
MESSAGES: dict[str, tuple[str, str]] = {
    # --- columns of the credit report's tables (the data's field names: never shown as they are) ---
    "col.city": ("地市", "City"),
    "col.county": ("区县", "County"),
    "col.school_code": ("学校代码", "School code"),
    "col.school_name": ("学校", "School"),
    "col.school": ("学校", "School"),
    "col.teachers": ("参训人数", "Teachers"),
    "col.evaluated": ("已评定", "Evaluated"),
    "col.passed": ("合格", "Passed"),
    "col.pass_rate": ("合格率", "Pass rate"),
    "col.credits_total": ("学分合计", "Total credits"),
    "col.credits_mean": ("人均学分", "Mean credits"),
    "col.credits": ("学分", "Credits"),
    "col.from": ("起(含)", "From"),
    "col.to": ("止(不含)", "To (not incl.)"),
    "col.programme": ("培训项目", "Programme"),
    "col.teacher": ("教师(身份证号已遮蔽)", "Teacher (ID masked)"),
    "col.name": ("姓名", "Name"),
    "col.role": ("角色", "Role"),
    "col.year": ("年度", "Year"),
    "col.version": ("版本", "Version"),
    "col.state": ("状态", "State"),
    "col.status": ("状态", "Status"),
    "col.reason": ("原因", "Reason"),
    "col.attempts": ("发送次数", "Attempts"),
    "col.sent_at": ("发送时间", "Sent at"),
    "col.decided_at": ("处理时间", "Decided at"),
    "col.deadline": ("登记截止日期", "Deadline"),
    "col.days_left": ("剩余天数", "Days left"),
    "col.warning": ("提醒", "Warning"),
    "col.list": ("清单", "List"),
    "col.detail": ("详情", "Detail"),
    "col.item": ("项目", "Item"),
    "col.value": ("数值", "Value"),
    # --- sheet names (Excel: at most 31 characters, none of []:*?/\) ---
    "sheet.summary": ("汇总", "Summary"),
    "sheet.cities": ("地市", "Cities"),
    "sheet.counties": ("区县", "Counties"),
    "sheet.schools": ("学校", "Schools"),
    "sheet.credits": ("学分分布", "Credits"),
    "sheet.rejected": ("被退回记录", "Rejected"),
    "sheet.pending": ("待确认记录", "Pending"),
    "sheet.deadlines": ("截止日期提醒", "Deadline warnings"),
    # --- values shown in the report ---
    "state.acknowledged": ("已确认", "acknowledged"),
    "state.rejected": ("被退回", "rejected"),
    "state.pending": ("待发送", "pending"),
    "state.sent": ("已发送未确认", "sent"),
    "state.not pushed": ("未推送", "not pushed"),
    "state.superseded": ("已被新版本取代", "superseded"),
    "status.not evaluated": ("未评定", "not evaluated"),
    "status.not passed": ("未合格", "not passed"),
    "role.teacher": ("教师", "teacher"),
    "role.workshop_host": ("工作坊主持人", "workshop host"),
    "role.school_admin": ("学校管理员", "school administrator"),
    "list.summary": ("合计", "summary"),
    "list.not passed": ("未合格教师", "not passed"),
    "list.not acknowledged": ("未被确认的记录", "not acknowledged"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "all programmes": ("全部项目", "all programmes"),
    "not in roster": ("(不在花名册中)", "(not in roster)"),
    # --- the credit report's page ---
    "report.title": ("继续教育学分报告: {programme}", "Credit report: {programme}"),
    "report.generated": ("生成于 {when} (UTC), creditbridge {version}。身份证号已遮蔽。",
                         "Generated {when} (UTC) by creditbridge {version}. ID numbers are masked."),
    "report.generated_at": ("生成时间 (UTC)", "Generated at (UTC)"),
    "report.registry_state": ("登记系统: {state}", "Registry: {state}"),
    "card.rejected": ("被退回", "Rejected"),
    "card.pending": ("待确认", "Pending"),
    "h.deadlines": ("登记截止日期提醒", "Deadline warnings"),
    "h.by_city": ("各地市合格率", "Pass rate by city"),
    "h.by_county": ("各区县合格率", "Pass rate by county"),
    "h.by_school": ("各学校合格率", "Pass rate by school"),
    "h.distribution": ("学分分布", "Credits distribution"),
    "h.registry": ("省级登记系统", "Registry"),
    "h.rejected": ("被退回记录", "Rejected"),
    "h.pending": ("待确认记录", "Pending"),
    "h.not_passed": ("未合格教师", "Teachers not passed"),
    "h.not_acknowledged": ("未被登记系统确认的记录", "Records not acknowledged"),
    "note.lowest_first": ("合格率最低的学校在前。", "Lowest pass rates first."),
    "note.lowest_chart": ("图中为合格率最低的 {n} 所学校。",
                          "The chart shows the {n} schools with the lowest pass rates."),
    "note.shown": ("显示 {shown} / {total} 行; XLSX 中有全部数据。",
                   "{shown} of {total} shown; the XLSX has them all."),
    "none": ("无", "none"),
    "no data": ("无数据", "no data"),
    "deadline.head": ("{name} ({programme}): 登记截止日期 {deadline}", "{name} ({programme}): registration deadline "
                      "{deadline}"),
    "deadline.days_left": (", 还剩 {days} 天", ", {days} day(s) left"),
    "deadline.passed": (", 已过截止日期", ", passed"),
    "deadline.counts": ("{not_passed} 名教师未合格, {not_acknowledged} 条记录未被登记系统确认。",
                        "{not_passed} teacher(s) not passed, {not_acknowledged} record(s) not acknowledged by the "
                        "registry."),
    "deadline.detail": ("{not_passed} 名未合格, {not_acknowledged} 条未确认",
                        "{not_passed} not passed, {not_acknowledged} not acknowledged"),
    "chart.by_city": ("各地市合格率", "pass rate by city"),
    "chart.by_county": ("各区县合格率", "pass rate by county"),
    "chart.by_school": ("合格率最低的学校", "schools with the lowest pass rates"),
    "chart.distribution": ("按学分统计的教师人数", "teachers by credits"),
    "chart.by_state": ("按状态统计的提交记录", "submissions by state"),
    # --- `creditbridge report`'s lines on the terminal ---
    "cli.totals": ("参训 {teachers} 人, 已评定 {evaluated} 人, 合格 {passed} 人 (合格率 {rate}), 学分合计 {credits}",
                   "teachers {teachers}, evaluated {evaluated}, passed {passed} ({rate}), credits {credits}"),
    "cli.registry": ("登记系统: 被退回 {rejected}, 待确认 {pending}",
                     "registry: rejected {rejected}, pending {pending}"),
    "cli.warning": ("提醒 {programme}: 登记截止日期 {deadline}, 还剩 {days} 天: {not_passed} 名未合格, "
                    "{not_acknowledged} 条未确认",
                    "WARNING {programme}: deadline {deadline} in {days} day(s): {not_passed} not passed, "
                    "{not_acknowledged} not acknowledged"),
    "cli.report": ("报告: {path}", "report: {path}"),
    # --- the sync run's XLSX (sync/report.py) ---
    "sync.sheet.summary": ("汇总", "summary"),
    "sync.sheet.errors": ("错误", "errors"),
    "sync.sheet.plan": ("计划", "plan"),
    "sync.item": ("项目", "item"),
    "sync.value": ("数值", "value"),
    "sync.row": ("行号", "row"),
    "sync.column": ("列", "column"),
    "sync.reason": ("原因", "reason"),
    "sync.action": ("操作", "action"),
    "sync.who": ("对象", "who"),
    "sync.name": ("姓名/名称", "name"),
    "sync.detail": ("详情", "detail"),
    "sync.result": ("结果", "result"),
    "sync.run_id": ("运行编号", "run id"),
    "sync.kind": ("类型", "kind"),
    "sync.file": ("文件", "file"),
    "sync.programme": ("培训项目", "programme"),
    "sync.dry_run": ("试运行", "dry run"),
    "sync.outcome": ("结果", "outcome"),
    "sync.started": ("开始时间 (UTC)", "started (UTC)"),
    "sync.finished": ("结束时间 (UTC)", "finished (UTC)"),
    "sync.errors": ("错误数", "errors"),
    "sync.planned": ("计划: {action}", "planned {action}"),
    "sync.aborted": ("中止原因", "aborted because"),
    "sync.note": ("说明", "note"),
    "sync.plan_csv": ("计划 (全部行, CSV)", "plan (all lines, CSV)"),
    "sync.plan_more": ("… 仅列出 {total} 行中的前 {shown} 行; 全部计划见同目录下的 {file}",
                       "… the first {shown} of {total} lines; all of them are in {file}, beside this file"),
    "sync.more_errors": ("… 另有 {n} 个错误未列出 (limits.max_errors)",
                         "… and {n} more errors, not listed (limits.max_errors)"),
    "sync.count.created": ("新建", "created"),
    "sync.count.updated": ("更新", "updated"),
    "sync.count.transferred": ("调动", "transferred"),
    "sync.count.suspended": ("停用", "suspended"),
    "sync.count.reactivated": ("恢复", "reactivated"),
    "sync.count.unchanged": ("未变", "unchanged"),
    "sync.count.lesson_cases_assigned": ("分配课例", "lesson_cases_assigned"),
    "sync.count.held": ("暂缓", "held"),
    "sync.count.lms_calls": ("Moodle 调用次数", "lms_calls"),
    # --- `credits explain` (mappings/explain.py) ---
    "explain.item": ("项目", "item"),
    "explain.value": ("数值", "value"),
    "explain.hours": ("学时", "hours"),
    "explain.credits": ("学分", "credits"),
    "explain.points": ("总分", "points"),
    "explain.passed": ("合格", "passed"),
    "explain.grade": ("等级", "grade"),
    "explain.cycle": ("周期", "cycle"),
    "explain.not_counted": (" (不计)", " (not counted)"),
    "explain.cycle_hours": ("周期学时", "cycle hours"),
    "explain.ceiling": ("上限", "ceiling"),
    "explain.floor": ("下限", "floor"),
    "explain.floor_met": ("达到下限", "floor met"),
    "explain.short_by": ("否, 差 {hours}", "no, short by {hours}"),
    "explain.years_to_come": ("剩余年份", "years to come"),
    "explain.topics_covered": ("已覆盖专题", "topics covered"),
    "explain.topics_missing": ("未覆盖专题", "topics missing"),
}

# Babel's locale for each language; Simplified Chinese as written in mainland China.
_LOCALES: dict[str, Locale] = {"zh-CN": Locale.parse("zh_Hans_CN"), "en": Locale.parse("en")}
_INDEX = {"zh-CN": 0, "en": 1}
# CLDR number patterns, parsed once (format_decimal would parse its pattern on every call: a report formats
# thousands of cells): up to 2 decimals, grouped; percentages with one decimal.
_DECIMAL = parse_pattern("#,##0.##")
_PERCENT = parse_pattern("#,##0.0%")
# Excel number formats for the XLSX cells that hold numbers and dates (the cell keeps the figure; the program
# shows it this way).
_XLSX_DATE = {"zh-CN": 'yyyy"年"m"月"d"日"', "en": "d mmm yyyy"}
_XLSX_DATETIME = {"zh-CN": 'yyyy"年"m"月"d"日" hh:mm:ss', "en": "d mmm yyyy hh:mm:ss"}


class LanguageError(CreditbridgeError):
    pass


@dataclass(frozen=True)
class Words:
    """The texts and formats of one language: `words("col.city")`, `words.percent(0.625)`."""

    language: Language

    def __call__(self, key: str, **fields: object) -> str:
        text = MESSAGES[key][_INDEX[self.language]]
        return text.format(**fields) if fields else text

    def value(self, prefix: str, code: str | None) -> str:
        """A code shown to people (a state, a role): its word when the catalogue has one, else the code."""
        if code is None:
            return ""
        entry = MESSAGES.get(f"{prefix}.{code}")
        return code if entry is None else entry[_INDEX[self.language]]

    @property
    def locale(self) -> Locale:
        return _LOCALES[self.language]

    def number(self, v: float | int | None) -> str:
        """12 → 12, 1234.5 → 1,234.5, 20.143 → 20.14; None → "" (no figure)."""
        return "" if v is None else _DECIMAL.apply(v, self.locale)

    def percent(self, fraction: float | None) -> str:
        """0.625 → 62.5%; None (no teacher) → "" ."""
        return "" if fraction is None else _PERCENT.apply(fraction, self.locale)

    def date(self, d: date | str | None) -> str:
        """A date (or its ISO text) the way the language writes it: 2022年12月31日, Dec 31, 2022."""
        if d is None:
            return ""
        return format_date(date.fromisoformat(d) if isinstance(d, str) else d, format="medium", locale=self.locale)

    def datetime(self, dt: datetime | str) -> str:
        """A moment in UTC (ISO text accepted), shown in UTC: the report says so next to it."""
        value = datetime.fromisoformat(dt) if isinstance(dt, str) else dt
        return format_datetime(value, format="medium", tzinfo=UTC, locale=self.locale)

    @property
    def xlsx_date_format(self) -> str:
        return _XLSX_DATE[self.language]

    @property
    def xlsx_datetime_format(self) -> str:
        return _XLSX_DATETIME[self.language]


def words(language: str) -> Words:
    """The Words of a language code; anything else is an error naming the accepted codes."""
    if language not in _INDEX:
        raise LanguageError(f"{language!r} is not a report language; accepted: {', '.join(LANGUAGES)}")
    return Words(language)  # type: ignore[arg-type]  # checked against the catalogue's languages just above
