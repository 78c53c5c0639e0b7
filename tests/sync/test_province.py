"""The synthetic province: deterministic, valid through our own readers and validation, the promised shape."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from creditbridge.programmes import programme_facts
from creditbridge.quickstart.province import write_changed_roster, write_province
from creditbridge.readers.exports import read_catalog, read_roster, read_topics
from creditbridge.sync.plan import plan_topics
from creditbridge.sync.validation import validate_catalog, validate_roster, validate_topics


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a = write_province(tmp_path / "a", teachers=500, seed=4)
    b = write_province(tmp_path / "b", teachers=500, seed=4)
    c = write_province(tmp_path / "c", teachers=500, seed=5)
    for name in ("roster", "catalog", "topics"):
        assert digest(getattr(a, name)) == digest(getattr(b, name)), name
    assert digest(a.roster) != digest(c.roster)


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_province(tmp_path_factory.mktemp("province"), teachers=12_000, seed=0)


def test_roster_is_gb18030_and_every_row_is_valid(province) -> None:  # type: ignore[no-untyped-def]
    raw = province.roster.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    table = read_roster(province.roster)
    assert table.encoding == "gb18030"
    good, errors = validate_roster(table)
    assert errors == []
    assert len(good) == province.teachers == 12_000
    assert len({r.id_number for r in good}) == 12_000
    assert sum(not r.active for r in good) == province.leavers > 0
    stages = Counter(r.stage for r in good)
    assert stages["primary"] > stages["middle"] > stages["high"] > 0 and stages["kindergarten"] > 0
    assert all(r.subject is None for r in good if r.stage == "kindergarten")
    subjects = {(r.stage, r.subject) for r in good}
    assert len(subjects) >= 40  # nearly all of sd-2022's 43 subject areas at this size
    assert len({r.city for r in good}) == province.cities == 6
    assert len({r.school_code for r in good}) <= province.schools
    assert 0.2 < sum(r.rural for r in good) / len(good) < 0.6


def test_xlsx_holds_the_same_rows(tmp_path: Path) -> None:
    province = write_province(tmp_path, teachers=600, seed=3, xlsx=True)
    assert province.roster_xlsx is not None
    xlsx = [c for _, c in read_roster(province.roster_xlsx)]
    with open(province.roster, encoding="gb18030", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert len(xlsx) == len(rows)
    assert xlsx == rows
    wb = openpyxl.load_workbook(province.roster_xlsx, read_only=True)
    assert wb.sheetnames == ["教师名单"]
    wb.close()


def test_catalog_has_enough_lesson_cases_required_ethics_and_electives(province) -> None:  # type: ignore[no-untyped-def]
    courses, errors = validate_catalog(read_catalog(province.catalog))
    assert errors == []
    assert len(courses) == province.courses
    teachers, _ = validate_roster(read_roster(province.roster))
    ids = {t.id_number for t in teachers}
    pools: Counter[tuple[str | None, str | None]] = Counter(
        (c.stage, c.subject) for c in courses if c.kind == "lesson_case")
    for t in teachers:
        assert pools[(t.stage, t.subject)] >= 4  # 3 distinct, even for a teacher who recorded one
    recorded = [c.recorded_by for c in courses if c.recorded_by]
    assert recorded and set(recorded) <= ids
    assert {c.code for c in courses if c.kind == "required" and c.topic == "ethics"}
    topics = {c.topic for c in courses if c.kind == "elective"}
    assert {"ethics", "subject", "steam", "class-management"} <= topics and len(topics) >= 17
    assert any(c.mode == "offline" for c in courses)


def test_topics_respect_the_programme(province) -> None:  # type: ignore[no-untyped-def]
    rows, errors = validate_topics(read_topics(province.topics))
    assert errors == []
    plan = plan_topics(rows, {}, limits=programme_facts("sd-2022"))  # raises if any school breaks a rule
    assert len(plan.schools) == province.schools
    assert all("ethics" in t and len(t) <= 6 for t in plan.schools.values())


def test_scale_at_a_million_is_the_promised_shape() -> None:
    from creditbridge.quickstart.province import _scale

    cities, counties, schools = _scale(1_000_000)
    assert (cities, counties, schools) == (16, 140, 20_000)
    assert _scale(50) == (1, 1, 4)


def test_changed_copy_changes_the_stated_share(province, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "changed.csv"
    summary = write_changed_roster(province.roster, out, share=0.01, seed=1)
    assert summary.rows == 12_000
    assert 60 < summary.changed < 200
    assert summary.transfers["school"] and summary.transfers["city"] and summary.leavers and summary.edits
    with open(province.roster, encoding="gb18030", newline="") as f1, open(out, encoding="gb18030", newline="") as f2:
        differing = sum(a != b for a, b in zip(csv.reader(f1), csv.reader(f2), strict=True))
    assert differing == summary.changed
    assert write_changed_roster(province.roster, tmp_path / "again.csv", share=0.01, seed=1) == summary
