"""A synthetic province: roster (GB18030 CSV, optionally XLSX), catalog and school topics, as the
provincial systems export them (the shape of /work/shared/samples/sd-2022).

Deterministic by seed and streamed: a million teachers are written row by row, never held. The
structure follows Shandong: 16 cities, about 140 counties and about 20,000 schools at a million
teachers (proportionally fewer when small), a realistic stage and subject mix (sd-2022's 43 subject
areas), rural schools, a few leavers, valid ID numbers. The catalog has lesson cases for every stage
and subject present, some recorded by teachers of the roster, the required ethics courses, electives
in every general topic and subject electives; every school chooses at most the programme's maximum of
topics, the mandatory ones included.

`write_changed_roster` copies a roster with a share of its teachers changed (transfers across school,
county and city, leavers, field edits): the re-sync input of the benchmark.
"""

from __future__ import annotations

import csv
import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from pathlib import Path

import openpyxl

from creditbridge.programmes import programme_facts
from creditbridge.records.id_number import check_digit

ROSTER_HEADER = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师",
                 "任职状态", "手机号", "邮箱", "教师编号"]
CATALOG_HEADER = ["code", "title", "kind", "topic", "mode", "hours", "stage", "subject", "city", "recorded_by"]

# Shandong's 16 cities with their region codes and a weight (roughly their share of teachers).
CITIES: tuple[tuple[str, str, int], ...] = (
    ("济南市", "3701", 9), ("青岛市", "3702", 10), ("淄博市", "3703", 5), ("枣庄市", "3704", 4),
    ("东营市", "3705", 2), ("烟台市", "3706", 7), ("潍坊市", "3707", 9), ("济宁市", "3708", 8),
    ("泰安市", "3709", 5), ("威海市", "3710", 3), ("日照市", "3711", 3), ("临沂市", "3713", 11),
    ("德州市", "3714", 5), ("聊城市", "3715", 6), ("滨州市", "3716", 4), ("菏泽市", "3717", 9),
)
_COUNTY_FIRST = "东西南北新平安长清高临宁阳河山明泰兴武文"
_COUNTY_SECOND = "城阳平安山河江乐庄丘兴和原州海水"

# Stage: (label, code letter, share of teachers, teachers per school, school name suffix).
STAGE_MIX: tuple[tuple[str, str, float, int, str], ...] = (
    ("幼儿园", "K", 0.20, 18, "幼儿园"),
    ("小学", "P", 0.40, 45, "小学"),
    ("初中", "M", 0.25, 60, "中学"),
    ("高中", "H", 0.15, 110, "高级中学"),
)
# Subject mix per stage (label, code for course codes, weight); sd-2022's 16 / 15 / 11 subjects.
SUBJECT_MIX: dict[str, tuple[tuple[str, str, int], ...]] = {
    "高中": (("语文", "CHN", 14), ("数学", "MATH", 14), ("英语", "ENG", 13), ("物理", "PHY", 8), ("化学", "CHEM", 6),
           ("生物", "BIO", 6), ("思想政治", "POL", 5), ("历史", "HIS", 5), ("地理", "GEO", 5), ("音乐", "MUS", 2),
           ("美术", "ART", 2), ("体育与健康", "PEH", 6), ("信息技术", "IT", 3), ("通用技术", "GT", 2),
           ("综合实践活动", "IPA", 1), ("心理健康教育", "MH", 2)),
    "初中": (("语文", "CHN", 15), ("数学", "MATH", 15), ("英语", "ENG", 14), ("物理", "PHY", 7), ("化学", "CHEM", 5),
           ("生物", "BIO", 5), ("道德与法治", "MOR", 6), ("历史", "HIS", 6), ("地理", "GEO", 5), ("音乐", "MUS", 3),
           ("美术", "ART", 3), ("体育", "PE", 7), ("信息技术", "IT", 4), ("综合实践活动", "IPA", 2),
           ("心理健康教育", "MH", 2)),
    "小学": (("语文", "CHN", 30), ("数学", "MATH", 25), ("英语", "ENG", 10), ("科学", "SCI", 6), ("音乐", "MUS", 5),
           ("体育", "PE", 6), ("美术", "ART", 5), ("道德与法治", "MOR", 5), ("信息技术", "IT", 3),
           ("综合实践活动", "IPA", 2), ("心理健康教育", "MH", 3)),
    "幼儿园": (("", "", 1),),
}
# sd-2022's general elective topics (code, Chinese title); "ethics" is the mandatory one.
TOPICS: tuple[tuple[str, str], ...] = (
    ("ethics", "师德失范警示"), ("class-management", "班级管理"), ("traditional-culture", "中华优秀传统文化"),
    ("family-education", "家庭教育指导"), ("mental-health", "学生心理健康教育"), ("research-methods", "教育科研方法"),
    ("theory-practice", "教育理论与实践"), ("core-competencies", "核心素养"),
    ("professional-development", "教师专业发展"),
    ("career-guidance", "生涯规划指导"), ("steam", "STEAM教育"), ("labour", "劳动教育"), ("safety", "安全教育"),
    ("evaluation", "教育评价改革"), ("school-innovation", "学校创新发展"), ("pbl", "项目式学习"),
    ("big-unit", "大单元教学"),
)
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彩春菊凤洁梅琳素云莲真环雪荣爱妹香月莺媛"
_LEAVER_STATUSES = ("离职", "调出", "退休")


@dataclass
class ProvinceFiles:
    """Paths of the generated files and what they hold."""

    catalog: Path
    topics: Path
    roster: Path
    roster_xlsx: Path | None = None
    teachers: int = 0
    schools: int = 0
    counties: int = 0
    cities: int = 0
    courses: int = 0
    leavers: int = 0


@dataclass(frozen=True)
class _School:
    code: str
    name: str
    county: str
    city: str
    stage: str
    rural: bool


@dataclass
class _Structure:
    cities: list[tuple[str, str]]
    counties: list[tuple[str, str, str]]  # (code, name, city)
    schools: list[_School]
    stage_schools: dict[str, tuple[list[_School], list[float]]] = field(default_factory=dict)


def _scale(teachers: int) -> tuple[int, int, int]:
    cities = min(16, max(1, math.ceil(teachers / 2_000)))
    counties = min(140, max(cities, round(teachers / 7_000)))
    schools = max(min(4, teachers), round(teachers / 50))
    return cities, counties, max(schools, counties if teachers >= counties else 1)


def _structure(rng: random.Random, teachers: int) -> _Structure:
    n_cities, n_counties, n_schools = _scale(teachers)
    cities = [(name, code) for name, code, _ in CITIES[:n_cities]]
    weights = [w for _, _, w in CITIES[:n_cities]]
    # Counties: at least one per city, the rest by the cities' weights.
    per_city = [1] * n_cities
    for _ in range(n_counties - n_cities):
        per_city[rng.choices(range(n_cities), weights=weights)[0]] += 1
    counties: list[tuple[str, str, str]] = []
    for (city, code), k in zip(cities, per_city, strict=True):
        names: set[str] = set()
        for j in range(k):
            while True:
                suffix = "区" if j < 3 else rng.choice("县市区")
                name = rng.choice(_COUNTY_FIRST) + rng.choice(_COUNTY_SECOND) + suffix
                if name not in names:
                    names.add(name)
                    break
            counties.append((f"{code}{j + 1:02d}", name, city))
    # Schools: stage by the stage mix weighted by each stage's school size, spread over the counties.
    stage_weights = [share / size for _, _, share, size, _ in STAGE_MIX]
    schools: list[_School] = []
    per_county_seq: dict[str, dict[str, int]] = {}
    for i in range(n_schools):
        stage_i = i if i < len(STAGE_MIX) else rng.choices(range(len(STAGE_MIX)), weights=stage_weights)[0]
        label, _, _, _, suffix = STAGE_MIX[stage_i]
        ccode, cname, city = counties[i % len(counties)] if i < len(counties) else rng.choice(counties)
        seq = per_county_seq.setdefault(ccode, {})
        number = seq.get(label, 0) + 1
        seq[label] = number
        school_no = sum(seq.values())
        schools.append(_School(f"{ccode}{school_no:03d}", f"{city}{cname}第{_ordinal(number)}{suffix}", cname, city,
                               label, rng.random() < 0.4))
    s = _Structure(cities, counties, schools)
    for label, _, _, size, _ in STAGE_MIX:
        members = [x for x in schools if x.stage == label]
        if members:
            s.stage_schools[label] = (members, list(accumulate(rng.uniform(0.5, 1.5) * size for _ in members)))
    return s


def _ordinal(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n <= 10:
        return "十" if n == 10 else digits[n]
    if n < 20:
        return "十" + digits[n % 10]
    if n < 100:
        return digits[n // 10] + "十" + (digits[n % 10] if n % 10 else "")
    return str(n)


def _teachers(rng: random.Random, s: _Structure, n: int) -> Iterator[tuple[list[str], str, str | None]]:
    """Rows of the roster, with the stage label and subject label of each (for the catalog)."""
    stage_labels = [label for label, *_ in STAGE_MIX if label in s.stage_schools]
    stage_cum = list(accumulate(share for label, _, share, _, _ in STAGE_MIX if label in s.stage_schools))
    subj_cum = {label: (mix, list(accumulate(w for _, _, w in mix))) for label, mix in SUBJECT_MIX.items()}
    county_code = {(name, city): code for code, name, city in s.counties}
    county_seq: dict[str, int] = {}
    start = date(1962, 1, 1).toordinal()
    days = [date.fromordinal(start + d).strftime("%Y%m%d") for d in range(365 * 38)]
    ndays = len(days)
    random_ = rng.random
    for i in range(n):
        stage = stage_labels[bisect(stage_cum, random_() * stage_cum[-1])]
        members, cum = s.stage_schools[stage]
        school = members[min(bisect(cum, random_() * cum[-1]), len(members) - 1)]
        mix, scum = subj_cum[stage]
        subject = mix[bisect(scum, random_() * scum[-1])][0]
        # Unique by construction: (birth county, day, sequence) never repeats within a county.
        region = county_code[(school.county, school.city)]
        k = county_seq.get(region, 0)
        county_seq[region] = k + 1
        first17 = f"{region}{days[(k * 7919 + 101) % ndays]}{(k // ndays) % 1000:03d}"
        id_number = first17 + check_digit(first17)
        name = _SURNAMES[int(random_() * len(_SURNAMES))] + _GIVEN[int(random_() * len(_GIVEN))] + (
            _GIVEN[int(random_() * len(_GIVEN))] if random_() < 0.7 else "")
        leaver = random_() < 0.002
        status = _LEAVER_STATUSES[i % 3] if leaver else "在职"
        phone = f"1{3 + i % 7}{int(random_() * 1e9):09d}" if random_() < 0.8 else ""
        email = f"t{i:07d}@school.example.cn" if random_() < 0.3 else ""
        row = [id_number, name, school.code, school.name, school.county, school.city, stage, subject,
               "是" if school.rural else "否", status, phone, email, f"T{i:08d}"]
        yield row, stage, subject or None


def write_province(
    out_dir: str | Path, *, teachers: int, seed: int = 0, programme: str = "sd-2022", xlsx: bool = False
) -> ProvinceFiles:
    """Write roster.csv (GB18030), catalog.csv (UTF-8), topics.csv and, with xlsx, roster.xlsx into out_dir.

    Deterministic by (teachers, seed, programme). Streams the roster: memory stays flat at any size.
    """
    if teachers < 1:
        raise ValueError("a province needs at least one teacher")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limits = programme_facts(programme)
    rng = random.Random(f"{seed}:{teachers}:{programme}")
    s = _structure(rng, teachers)
    files = ProvinceFiles(catalog=out / "catalog.csv", topics=out / "topics.csv", roster=out / "roster.csv",
                          roster_xlsx=out / "roster.xlsx" if xlsx else None, teachers=teachers,
                          schools=len(s.schools), counties=len(s.counties), cities=len(s.cities))

    # Who is there per (stage, subject, city), with a few recorders for lesson cases.
    cases_each = max(limits.lesson_cases, 1) + 1
    recorders: dict[tuple[str, str, str], list[str]] = {}
    wb = ws = None
    if xlsx:
        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("教师名单")
        ws.append(ROSTER_HEADER)
    with open(files.roster, "w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(ROSTER_HEADER)
        for row, stage, subject in _teachers(rng, s, teachers):
            w.writerow(row)
            if ws is not None:
                ws.append(row)
            if row[9] == "在职":
                key = (stage, subject or "", row[5])
                got = recorders.get(key)
                if got is None:
                    recorders[key] = [row[0]]
                elif len(got) < 2:
                    got.append(row[0])
            else:
                files.leavers += 1
    if wb is not None and files.roster_xlsx is not None:
        wb.save(files.roster_xlsx)

    files.courses = _write_catalog(files.catalog, programme, recorders, cases_each, teachers)
    _write_topics(files.topics, rng, s, limits.max_topics or 6, limits.mandatory_topics)
    return files


def _prefix(programme: str) -> str:
    parts = programme.upper().split("-")
    return parts[0] + parts[1][-2:] if len(parts) > 1 and parts[1][-2:].isdigit() else programme.upper()


def _write_catalog(path: Path, programme: str, recorders: dict[tuple[str, str, str], list[str]], cases_each: int,
                   teachers: int) -> int:
    p = _prefix(programme)
    stage_letter = {label: letter for label, letter, *_ in STAGE_MIX}
    subject_abbr = {(stage, label): abbr for stage, mix in SUBJECT_MIX.items() for label, abbr, _ in mix}
    city_index = {name: i + 1 for i, (name, _, _) in enumerate(CITIES)}
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(CATALOG_HEADER)
        combos = sorted(recorders, key=lambda k: (stage_letter[k[0]], k[1], city_index[k[2]]))
        for stage, subject, city in combos:
            recorded = recorders[(stage, subject, city)]
            abbr = subject_abbr[(stage, subject)] or "GEN"
            for j in range(cases_each):
                code = f"{p}-L-{stage_letter[stage]}-{abbr}-{city_index[city]:02d}{j + 1:02d}"
                title = f"{city}{stage}{subject}市级优课{j + 1}"
                # Some cases are recorded by teachers of the roster: sync must never assign them their own.
                by = recorded[j] if j < len(recorded) and j < 2 else ""
                w.writerow([code, title, "lesson_case", "", "online", 2, stage, subject, city, by])
                n += 1
        w.writerow([f"{p}-ETH-01", "师德师风建设(一)", "required", "ethics", "online", 2, "", "", "", ""])
        w.writerow([f"{p}-ETH-02", "教育法律法规", "required", "ethics", "online", 2, "", "", "", ""])
        n += 2
        for topic, title in TOPICS:
            for j in range(4):
                w.writerow([f"{p}-E-{topic.upper()}-{j + 1:02d}", f"{title}{j + 1}", "elective", topic,
                            "offline" if topic == "research-methods" and j == 3 else "online", j + 1,
                            "", "", "", ""])
                n += 1
        per_subject = 3 if teachers >= 10_000 else 1
        for stage, subject in sorted({(a, b) for a, b, _ in recorders if b}, key=lambda k: (stage_letter[k[0]], k[1])):
            for j in range(per_subject):
                w.writerow([f"{p}-S-{stage_letter[stage]}-{subject_abbr[(stage, subject)]}-{j + 1:02d}",
                            f"{stage}{subject}课程标准解读{j + 1}", "elective", "subject", "online", 2 + j % 2,
                            stage, subject, "", ""])
                n += 1
    return n


def _write_topics(path: Path, rng: random.Random, s: _Structure, max_topics: int, mandatory: tuple[str, ...]) -> None:
    others = [t for t, _ in TOPICS if t not in mandatory]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["school", "topic"])
        room = max(0, max_topics - len(mandatory))
        for school in s.schools:
            for t in mandatory:
                w.writerow([school.code, t])
            for t in rng.sample(others, rng.randint(min(2, room), room)):
                w.writerow([school.code, t])


@dataclass
class ChangeSummary:
    """What write_changed_roster changed: each changed teacher is exactly one action on re-sync."""

    rows: int = 0
    transfers: dict[str, int] = field(default_factory=lambda: {"school": 0, "county": 0, "city": 0})
    leavers: int = 0
    edits: int = 0

    @property
    def changed(self) -> int:
        return sum(self.transfers.values()) + self.leavers + self.edits


def write_changed_roster(src: str | Path, dst: str | Path, *, share: float = 0.01, seed: int = 1) -> ChangeSummary:
    """Copy a generated roster (GB18030 CSV) with `share` of its serving teachers changed, streaming.

    Of the changed: 40% transfers (half to another school of the county, a quarter across counties, a
    quarter across cities), 20% leavers (离职/调出), 40% edits (phone, e-mail or rural flag). A leaver of the
    source is never picked: nothing is known of them to change.
    """
    rng = random.Random(f"changes:{seed}")
    summary = ChangeSummary()
    # The last school seen per (city, county, stage) and per (city, stage): transfer targets, without
    # holding the file. A teacher moves to a school of their own stage.
    by_county: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
    by_city: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    with open(src, encoding="gb18030", newline="") as fin, open(dst, "w", encoding="gb18030", newline="") as fout:
        r = csv.reader(fin)
        w = csv.writer(fout)
        w.writerow(next(r))
        for row in r:
            summary.rows += 1
            school = (row[2], row[3], row[4], row[5])
            city, county, stage = row[5], row[4], row[6]
            if row[9] == "在职" and rng.random() < share:
                what = rng.random()
                target: tuple[str, str, str, str] | None = None
                level = ""
                if what < 0.2:
                    target, level = by_county.get((city, county, stage)), "school"
                elif what < 0.3:
                    level = "county"
                    target = next((v for k, v in by_county.items() if k[0] == city and k[1] != county
                                   and k[2] == stage), None)
                elif what < 0.4:
                    level = "city"
                    target = next((v for k, v in by_city.items() if k[0] != city and k[1] == stage), None)
                if target is not None and target[0] != row[2]:
                    row[2], row[3], row[4], row[5] = target
                    summary.transfers[level] += 1
                elif 0.4 <= what < 0.6:
                    row[9] = rng.choice(("离职", "调出"))
                    summary.leavers += 1
                else:
                    # An edit (also when a transfer found no other school to go to).
                    field_i = rng.choice((8, 10, 11))
                    if field_i == 8:
                        row[8] = "否" if row[8] == "是" else "是"
                    elif field_i == 10:
                        row[10] = f"139{summary.rows % 10**8:08d}"
                    else:
                        row[11] = f"changed{summary.rows}@school.example.cn"
                    summary.edits += 1
            by_county[(city, county, stage)] = school
            by_city[(city, stage)] = school
            w.writerow(row)
    return summary
