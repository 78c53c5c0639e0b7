"""Validation: each failure with its row number, column and reason; good rows through; duplicates; catalog
and topics rows; the column-wise fast path agrees with the per-row validator."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from creditbridge.readers.exports import read_catalog, read_roster, read_topics
from creditbridge.records.id_number import check_digit
from creditbridge.sync.records import InvalidRow, RosterRow, roster_hash
from creditbridge.sync.validation import (
    RosterValidator,
    ValidatedRoster,
    id_number_problem,
    parse_rural,
    parse_status,
    validate_catalog,
    validate_roster,
    validate_topics,
)

HEADER = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师", "任职状态",
          "手机号", "邮箱", "教师编号"]
COL = {h: i for i, h in enumerate(HEADER)}


def ident(n: int, born: str = "19850101") -> str:
    first17 = f"370102{born}{n:03d}"
    return first17 + check_digit(first17)


def good_row(n: int = 1) -> list[str]:
    return [ident(n), f"教师{n}", "370102001", "济南市历下区第一中学", "历下区", "济南市", "初中", "数学", "否", "在职",
            "13800000000", "", f"T{n}"]


def write_roster(path: Path, rows: list[list[str]], encoding: str = "gb18030") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


BAD_ID_CHECK = ident(5)[:-1] + ("0" if ident(5)[-1] != "0" else "1")

# (column, bad value, reason fragment). Each case: a file of one good row and the bad one (row 3).
CASES = [
    ("身份证号", "", "missing ID number"),
    ("身份证号", "37010219850101", "17 digits and then a digit or X; got 14 characters"),
    ("身份证号", "37010219850101001A", "17 digits and then a digit or X"),
    ("身份证号", "370102198502300019", "no valid birth date"),
    ("身份证号", BAD_ID_CHECK, "wrong check digit"),
    ("姓名", "", "missing 姓名"),
    ("学校代码", " ", "missing 学校代码"),
    ("学校名称", "", "missing 学校名称"),
    ("区县", "", "missing 区县"),
    ("地市", "", "missing 地市"),
    ("学段", "", "missing 学段"),
    ("学段", "大学", "unknown stage '大学'"),
    ("学科", "", "missing 学科"),
    ("学科", "通用技术", "subject '通用技术' does not exist in stage '初中'"),
    ("学科", "烹饪", "unknown subject '烹饪'"),
    ("是否乡村教师", "", "missing 是否乡村教师"),
    ("是否乡村教师", "也许", "rural flag must be 是 or 否"),
    ("任职状态", "", "missing 任职状态"),
    ("任职状态", "休假", "unknown status '休假'"),
    ("手机号", "12ab", "not a phone number"),
    ("邮箱", "no-at-sign", "not an e-mail address"),
]


@pytest.mark.parametrize(("column", "value", "reason"), CASES, ids=[f"{c}:{v or 'empty'}" for c, v, _ in CASES])
def test_each_failure_names_row_column_and_reason(tmp_path: Path, column: str, value: str, reason: str) -> None:
    bad = good_row(2)
    bad[COL[column]] = value
    path = write_roster(tmp_path / "roster.csv", [good_row(1), bad, good_row(3)])
    good, errors = validate_roster(read_roster(path))
    assert [r.row for r in good] == [2, 4]  # good rows still go through
    assert len(errors) == 1
    e = errors[0]
    assert (e.row, e.column) == (3, column)
    assert reason in e.reason


def test_kindergarten_has_no_subject(tmp_path: Path) -> None:
    k = good_row(1)
    k[COL["学段"]], k[COL["学科"]] = "幼儿园", ""
    k2 = good_row(2)
    k2[COL["学段"]], k2[COL["学科"]] = "幼儿园", "语文"
    good, errors = validate_roster(read_roster(write_roster(tmp_path / "r.csv", [k, k2])))
    assert [(r.stage, r.subject) for r in good] == [("kindergarten", None)]
    assert [(e.row, e.column) for e in errors] == [(3, "学科")]
    assert "kindergarten teachers have no subject" in errors[0].reason


def test_id_numbers_are_masked_in_every_reason(tmp_path: Path) -> None:
    rows = [good_row(1), good_row(1)]
    rows.append(good_row(2))
    rows[2][0] = BAD_ID_CHECK
    _, errors = validate_roster(read_roster(write_roster(tmp_path / "r.csv", rows)))
    assert len(errors) == 3
    for e in errors:
        assert ident(1) not in e.reason and BAD_ID_CHECK not in e.reason
        assert "*" in e.reason


def test_an_id_number_on_several_rows_rejects_every_one_naming_them_all(tmp_path: Path) -> None:
    rows = [good_row(1), good_row(7), good_row(2), good_row(7), good_row(3), good_row(7)]
    rows[3][COL["学科"]] = "语文"  # one subject per teacher: a second subject is a second row
    good, errors = validate_roster(read_roster(write_roster(tmp_path / "r.csv", rows)))
    assert [r.id_number for r in good] == [ident(1), ident(2), ident(3)]
    assert [(e.row, e.column) for e in errors] == [(3, "身份证号"), (5, "身份证号"), (7, "身份证号")]
    assert all("rows 3, 5, 7" in e.reason for e in errors)


def test_values_as_exports_write_them(tmp_path: Path) -> None:
    for text, value in [("是", True), ("否", False), ("Y", True), ("n", False), ("1", True), ("0", False)]:
        assert parse_rural(text) is value
    for text, value in [("在职", "active"), ("离职", "left"), ("调出", "left"), ("退休", "left")]:
        assert parse_status(text) == value
    row = good_row(1)
    row[0] = " " + row[0][:-1] + row[0][-1].lower() + " "
    row[COL["是否乡村教师"]] = "Y"
    row[COL["学段"]] = "初中"
    good, errors = validate_roster(read_roster(write_roster(tmp_path / "r.csv", [row])))
    assert errors == []
    assert good[0].rural is True
    assert good[0].subject == "maths"
    assert good[0].stage == "middle"


def test_x_check_digit_is_accepted() -> None:
    for n in range(200):
        v = ident(n, "19900307")
        if v.endswith("X"):
            assert id_number_problem(v) is None
            assert id_number_problem(v[:-1] + "0") is not None
            break
    else:
        pytest.fail("no X among the generated numbers")


def test_column_wise_fast_path_agrees_with_the_per_row_validator(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = [good_row(i) for i in range(300)]
    for r in rows:
        r[COL["学段"]], r[COL["学科"]] = rng.choice([("初中", "数学"), ("小学", "语文"), ("高中", "通用技术"),
                                                   ("幼儿园", ""), ("幼儿园", "无")])
        r[COL["邮箱"]] = rng.choice(["", "a@b.cn"])
        r[COL["手机号"]] = rng.choice(["", "13800000000", "+86 138-0000-0000"])
    good_id = ident(9)
    # ID numbers that fool one check of the chunk's column-wise shape test but not another: an X inside, a
    # full-width digit (str.isdigit and int() take it: the sum would come out right), a lower-case x, lengths
    # that add up to 18 per row over two rows, a non-ASCII letter, a second X.
    full_width = chr(ord(good_id[3]) - ord("0") + ord("０"))
    odd_ids = [good_id[:5] + "X" + good_id[6:], good_id[:3] + full_width + good_id[4:], good_id[:17].lower() + "x",
               good_id + "1", good_id[:17], "é" + good_id[1:], good_id[:16] + "XX", good_id[:17] + "Y",
               "\t" + good_id]
    mutations = [(c, v) for c, v, _ in CASES] + [("是否乡村教师", "Y"), ("学科", "None"), ("身份证号", "'" + good_id)]
    mutations += [("身份证号", v) for v in odd_ids]
    for r in rows:
        if rng.random() < 0.4:
            c, v = rng.choice(mutations)
            r[COL[c]] = v
    table = read_roster(write_roster(tmp_path / "r.csv", rows))
    check = RosterValidator(table)
    one_by_one = [check(r, c) for r, c in table]
    assert any(isinstance(x, InvalidRow) for x in one_by_one) and any(isinstance(x, RosterRow) for x in one_by_one)
    for size in (1, 17, 256):
        items: list[RosterRow | InvalidRow] = []
        hashes: list[str | None] = []
        for i, h in ValidatedRoster(table).chunks(size=size):
            items += i
            hashes += h
        assert items == one_by_one
        assert hashes == [None if isinstance(x, InvalidRow) else x.row_hash for x in items]
        assert all(h is None or len(h) == 32 for h in hashes)


def test_source_hash_is_the_exports_text_in_field_order(tmp_path: Path) -> None:
    rows = [good_row(1), good_row(2)]
    a = validate_roster(read_roster(write_roster(tmp_path / "a.csv", rows)))[0]
    # the same teachers in another column order, other row positions, UTF-8: the same hashes
    order = [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    path = tmp_path / "b.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([HEADER[i] for i in order])
        w.writerow([""] * 13)
        for r in reversed(rows):
            w.writerow([r[i] for i in order])
    b = validate_roster(read_roster(path))[0]
    assert {r.id_number: r.row_hash for r in a} == {r.id_number: r.row_hash for r in b}
    assert [r.row for r in b] == [3, 4]
    # another spelling of the same value is another text: the teacher shows as updated once
    rows[0][COL["是否乡村教师"]] = "N"
    c = validate_roster(read_roster(write_roster(tmp_path / "c.csv", rows)))[0]
    assert c[0].rural is a[0].rural is False
    assert c[0].row_hash != a[0].row_hash and c[1].row_hash == a[1].row_hash
    # rows built in code hash their normalised values
    assert a[0]._replace(source_hash=None).row_hash == roster_hash(a[0])


def test_row_hash_ignores_the_row_number_and_sees_every_field() -> None:
    row = RosterRow(2, ident(1), "教师", "S1", "学校", "历下区", "济南市", "middle", "maths", False, "active",
                    None, None, None)
    assert row._replace(row=99).row_hash == row.row_hash
    for field, value in [("name", "x"), ("school_code", "S2"), ("county", "y"), ("subject", "chinese"),
                         ("rural", True), ("status", "left"), ("phone", "1"), ("email", "a@b.cn"),
                         ("teacher_code", "T")]:
        assert row._replace(**{field: value}).row_hash != row.row_hash, field


def test_catalog_validation(tmp_path: Path) -> None:
    rows = [
        ["code", "title", "kind", "topic", "mode", "hours", "stage", "subject", "city", "recorded_by"],
        ["C1", "师德", "required", "ethics", "online", "2", "", "", "", ""],
        ["C2", "课例", "lesson_case", "", "online", "2", "初中", "数学", "济南市", ident(1)],
        ["C3", "", "elective", "steam", "online", "2", "", "", "", ""],
        ["C4", "x", "seminar", "", "online", "2", "", "", "", ""],
        ["C5", "x", "elective", "", "boat", "-1", "", "", "", ""],
        ["C6", "x", "lesson_case", "", "online", "2", "初中", "", "", BAD_ID_CHECK],
        ["C7", "x", "elective", "subject", "线上", "1.5", "高中", "道德与法治", "", ""],
        ["C1", "again", "elective", "steam", "online", "1", "", "", "", ""],
    ]
    path = tmp_path / "catalog.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    good, errors = validate_catalog(read_catalog(path))
    assert [c.code for c in good] == ["C2"]
    assert good[0].stage == "middle" and good[0].subject == "maths" and good[0].recorded_by == ident(1)
    got = {(e.row, e.column) for e in errors}
    assert {(4, "title"), (5, "kind"), (6, "mode"), (6, "hours"), (7, "subject"), (7, "recorded_by"),
            (8, "subject"), (2, "code"), (9, "code")} <= got
    dup = [e for e in errors if e.row == 2]
    assert "rows 2, 9" in dup[0].reason
    assert all(ident(1) not in e.reason and BAD_ID_CHECK not in e.reason for e in errors)


def test_topics_validation(tmp_path: Path) -> None:
    path = tmp_path / "topics.csv"
    path.write_text("学校代码,专题\nS1,ethics\nS1,\n,steam\nS1,ethics\nS2,ethics\n", encoding="utf-8")
    good, errors = validate_topics(read_topics(path))
    assert [(t.row, t.school_code, t.topic) for t in good] == [(2, "S1", "ethics"), (6, "S2", "ethics")]
    assert [(e.row, e.column) for e in errors] == [(3, "专题"), (4, "学校代码")]
