"""The provincial export files (roster, catalog, school topics): the fields we read from each, with the
headers that name them, and a reader per file. Sync and the standalone evaluation (mappings/inputs.py) read
them alike, through readers/table.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from creditbridge.readers.table import FieldSpec, Table, open_table
from creditbridge.settings.model import InputLimits

# The standard headers of DESIGN.md; the English field name is always accepted as well.
ROSTER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id_number", ("身份证号",)),
    FieldSpec("name", ("姓名",)),
    FieldSpec("school_code", ("学校代码",)),
    FieldSpec("school_name", ("学校名称",)),
    FieldSpec("county", ("区县",)),
    FieldSpec("city", ("地市",)),
    FieldSpec("stage", ("学段",)),
    FieldSpec("subject", ("学科",)),
    FieldSpec("rural", ("是否乡村教师",)),
    FieldSpec("status", ("任职状态",)),
    FieldSpec("phone", ("手机号",), required=False),
    FieldSpec("email", ("邮箱",), required=False),
    FieldSpec("teacher_code", ("教师编号",), required=False),
)

CATALOG_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("code", ("课程编号",)),
    FieldSpec("title", ("课程名称",)),
    FieldSpec("kind", ("类别",)),
    FieldSpec("topic", ("专题",), required=False),
    FieldSpec("mode", ("方式",), required=False),
    FieldSpec("hours", ("学时",)),
    FieldSpec("stage", ("学段",), required=False),
    FieldSpec("subject", ("学科",), required=False),
    FieldSpec("city", ("地市",), required=False),
    FieldSpec("recorded_by", ("授课教师身份证号",), required=False),
)

TOPIC_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("school", ("学校代码", "school_code")),
    FieldSpec("topic", ("专题",)),
)


def read_roster(path: str | Path, header_map: Mapping[str, str] | None = None,
                limits: InputLimits | None = None) -> Table:
    """A roster export (XLSX or CSV). `header_map` is settings.sync.header_map (export header -> ours)."""
    return open_table(path, "roster", ROSTER_FIELDS, header_map, limits)


def read_catalog(path: str | Path, header_map: Mapping[str, str] | None = None,
                 limits: InputLimits | None = None) -> Table:
    """A catalog (YAML, XLSX or CSV) with English or Chinese column names."""
    return open_table(path, "catalog", CATALOG_FIELDS, header_map, limits)


def read_topics(path: str | Path, header_map: Mapping[str, str] | None = None,
                limits: InputLimits | None = None) -> Table:
    """A school topics file: rows of school (学校代码) and topic (专题)."""
    return open_table(path, "topics", TOPIC_FIELDS, header_map, limits)
