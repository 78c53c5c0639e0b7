"""Validation of export rows: pure functions from (row number, cells) to a typed row or its errors.

Every failure is a RowError(row, column, reason) with the spreadsheet row number, the column header as
written in the file and a readable reason; ID numbers in reasons are masked. Good rows go through.
Duplicates (an ID number or course code on several rows) need a look at the whole file:
`DuplicateTracker` keeps one small entry per key (the first row number), which is a few hundred bytes
per teacher at most, and reports every row of a duplicated key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from functools import partial
from hashlib import blake2b
from itertools import repeat
from operator import add, and_, eq, ge, is_not, itemgetter, le
from typing import Any

from creditbridge.readers.table import Table
from creditbridge.records.id_number import CHECK_CHARACTERS, WEIGHTS, birth_date_valid, mask_id_number
from creditbridge.records.vocabulary import STAGES, SUBJECTS
from creditbridge.store.models.core import CatalogCourse, SchoolTopic, Teacher
from creditbridge.sync.records import CatalogRow, InvalidRow, RosterRow, RowError, TopicRow

# Values as the exports write them. Keys are compared after strip() and casefold().
RURAL_VALUES: dict[str, bool] = {
    "是": True, "否": False, "y": True, "n": False, "yes": True, "no": False, "1": True, "0": False,
    "true": True, "false": False, "乡村": True, "农村": True, "城镇": False, "城市": False, "√": True, "×": False,
}
# Leavers (离职教师库): suspended in Moodle, never deleted.
STATUS_VALUES: dict[str, str] = {
    "在职": "active", "在岗": "active", "在编": "active", "正常": "active", "借调": "active", "挂职": "active",
    "active": "active", "1": "active",
    "离职": "left", "调出": "left", "退休": "left", "辞职": "left", "解聘": "left", "离岗": "left", "死亡": "left",
    "去世": "left", "调离": "left", "left": "left", "inactive": "left", "0": "left",
}
NO_SUBJECT = frozenset({"", "无", "-", "—", "/", "／", "none"})
CATALOG_KINDS: dict[str, str] = {
    "lesson_case": "lesson_case", "required": "required", "elective": "elective", "task": "task",
    "课例": "lesson_case", "优课": "lesson_case", "市级优课": "lesson_case", "必修": "required",
    "选修": "elective", "任务": "task", "考核任务": "task",
}
MODES: dict[str, str] = {"online": "online", "offline": "offline", "线上": "online", "在线": "online",
                         "网络": "online", "线下": "offline", "面授": "offline", "": "online"}

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[\d\- ]{5,20}")
_STAGE_LABELS = "高中, 初中, 小学, 幼儿园"
_new_tuple = tuple.__new__
_SEP = "\x1f"
# The most characters the store holds per field (its columns say): a longer value is a row error here, not a
# database error (PostgreSQL refuses it) in the middle of a run.
def _column_length(model: type[Any], column: str) -> int:
    length = getattr(model.__table__.c[column].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{model.__name__}.{column} has no length")  # a column without one needs no check here
    return length


_ROSTER_MAX = {f: _column_length(Teacher, f) for f in (
    "name", "school_code", "school_name", "county", "city", "phone", "email", "teacher_code")}
_CATALOG_MAX = {f: _column_length(CatalogCourse, f) for f in ("code", "title", "topic", "city")}
_TOPICS_MAX = {"school": _column_length(SchoolTopic, "school_code"), "topic": _column_length(SchoolTopic, "topic")}
_hexdigest = blake2b.hexdigest
_EMPTY_TO_NONE: dict[str | None, None] = {"": None}
_FIRST17 = itemgetter(slice(0, 17))
_LAST = itemgetter(17)
_REGION = itemgetter(slice(0, 6))
_BIRTH = itemgetter(slice(6, 14))
_SEQ = itemgetter(slice(14, 17))


class _PartialSums(dict[str, int]):
    """Weighted digit sums (mod 11) of a fixed slice of the ID number, cached: a province has a few hundred
    region codes and a few tens of thousands of birth dates, so three look-ups replace 17 multiplications.
    A birth date that is not a real date maps to -1."""

    def __init__(self, start: int, dates: bool = False) -> None:
        super().__init__()
        self.weights = WEIGHTS[start:]
        self.dates = dates

    def __missing__(self, key: str) -> int:
        if len(self) > 200_000:  # bounded whatever the input
            self.clear()
        value = sum(int(c) * w for c, w in zip(key, self.weights, strict=False)) % 11
        if self.dates and not birth_date_valid(key):
            value = -1
        self[key] = value
        return value


_REGIONS = _PartialSums(0)
_BIRTHS = _PartialSums(6, dates=True)
_SEQUENCES = _PartialSums(14)
_DIGITS = frozenset("0123456789X")
_CHECK_OF_SUM = tuple(CHECK_CHARACTERS[i % 11] for i in range(40))
_VALID_ID = "11010519491231002X"  # a placeholder while a column is checked; its row is already flagged


def too_long(value: str, limit: int) -> str | None:
    """The reason a value longer than `limit` characters is refused (the value itself is not repeated)."""
    if len(value) <= limit:
        return None
    return f"{len(value)} characters, more than the {limit} this field holds"


def id_number_problem(v: str) -> str | None:
    """The fast kernel of `records.id_number.id_number_problem` (the reference, tested equal): three cached
    partial sums instead of 17 multiplications, for a million-row roster. Same reasons, same masking."""
    if len(v) != 18 or not (v.isascii() and v[:17].isdigit() and v[17] in _DIGITS):
        if not v:
            return "missing ID number"
        return f"ID number must be 17 digits and then a digit or X; got {len(v)} characters"
    birth = _BIRTHS[v[6:14]]
    if birth < 0:
        return f"ID number {mask_id_number(v)} has no valid birth date"
    if CHECK_CHARACTERS[(_REGIONS[v[:6]] + birth + _SEQUENCES[v[14:17]]) % 11] != v[17]:
        return f"ID number {mask_id_number(v)} has a wrong check digit (ISO 7064 MOD 11-2)"
    return None


def normalise_id_number(text: str) -> str:
    # Exports force text with a leading apostrophe or tab; the check letter may be lower-case.
    return text.strip().lstrip("'\t").upper()


def parse_rural(text: str) -> bool | None:
    return RURAL_VALUES.get(text.strip().casefold())


def parse_status(text: str) -> str | None:
    return STATUS_VALUES.get(text.strip().casefold())


def _stage_table() -> dict[str, str]:
    table = dict(STAGES)
    for code in set(STAGES.values()):
        table[code] = code
    return table


def _subject_tables(subjects: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """stage -> {label or code: code}."""
    out: dict[str, dict[str, str]] = {}
    for stage, table in subjects.items():
        t = dict(table)
        for code in table.values():
            t[code] = code
        out[stage] = t
    return out


class RosterValidator:
    """Validates roster rows of one Table. Callable: `(row, cells) -> RosterRow | InvalidRow`.

    `subjects` is the programme's vocabulary (stage code -> {label: subject code}); the default is the
    national list of records/vocabulary.py, which is sd-2022's 43 subject areas.
    """

    def __init__(self, table: Table, subjects: Mapping[str, Mapping[str, str]] | None = None) -> None:
        pos = table.positions
        self.table = table
        self.col = {name: table.column(name) for name in
                    ("id_number", "name", "school_code", "school_name", "county", "city", "stage", "subject",
                     "rural", "status", "phone", "email", "teacher_code")}
        self._p = tuple(pos.get(n, -1) for n in self.col)
        # Columns as the table gives them need no second strip when its reader stripped every cell already.
        self._strip: Callable[[str], str] | None = None if table.cells_stripped else str.strip
        self._stages = _stage_table()
        self._subjects = _subject_tables(subjects if subjects is not None else SUBJECTS)
        # Whether a label exists in some other stage, for a more helpful reason.
        self._any_subject = {k for t in self._subjects.values() for k in t}
        # (stage, subject text) -> subject code, or "" for "no subject" in a stage without subjects.
        self._pairs: dict[tuple[str | None, str], str] = {
            (stage, label): code for stage, t in self._subjects.items() for label, code in t.items()}
        # "No subject" only where the per-row check takes it: kindergarten, when its vocabulary has no subjects.
        if not self._subjects.get("kindergarten"):
            self._pairs.update({("kindergarten", x): "" for x in NO_SUBJECT})
        # Not salted with the vocabulary: a new label must not make every teacher of a province look changed
        # (a million Moodle updates); a row stored while valid stays as it is.
        self._hasher = partial(blake2b, digest_size=16)
        # The cells hashed: the roster fields present in the file, in field order (a missing optional
        # column would only add a constant).
        self._pick = itemgetter(*(p for p in self._p if p >= 0))

    def source_hash(self, cells: list[str]) -> str:
        """Hash of the row as the export wrote it: the cells of the roster fields the file has, in field order
        and unstripped (stripping a million rows' cells costs more than the odd update it would save), so
        a re-sync recognises an unchanged row before validating it. See `fingerprints`."""
        return self._hasher(_SEP.join(self._pick(cells)).encode("utf-8")).hexdigest()

    def _hashes(self, cells: Iterable[list[str]]) -> list[str]:
        texts = map(_SEP.join, map(self._pick, cells))
        return list(map(_hexdigest, map(self._hasher, map(str.encode, texts))))

    def _stripped(self, rows: list[tuple[int, list[str]]]) -> list[list[str]]:
        """The 13 fields' columns, stripped (an absent optional field is a column of "")."""
        cols = list(zip(*map(itemgetter(1), rows), strict=False))
        empty = [""] * len(rows)
        strip = self._strip
        if strip is None:
            return [list(cols[p]) if p >= 0 else empty for p in self._p]
        return [list(map(strip, cols[p])) if p >= 0 else empty for p in self._p]

    def fingerprints(self, rows: list[tuple[int, list[str]]]) -> tuple[list[str], list[str], list[str | None]]:
        """(normalised ID numbers, source hashes, statuses "active"/"left"/None) of many rows, without
        validating them: a re-sync compares these with the store and validates only the rows that differ.

        A row whose text is what a stored row had was valid when it was stored: validation is a pure
        function of the text (and of the vocabulary, which only ever grows in practice)."""
        cells = list(map(itemgetter(1), rows))
        ids = list(map(str.upper, map(str.lstrip, map(str.strip, map(itemgetter(self._p[0]), cells)),
                                      repeat("'\t"))))
        statuses = list(map(STATUS_VALUES.get, map(str.strip, map(itemgetter(self._p[9]), cells))))
        return ids, self._hashes(cells), statuses

    def __call__(self, row: int, cells: list[str]) -> RosterRow | InvalidRow:
        p_id, p_name, p_sc, p_sn, p_county, p_city, p_stage, p_subj, p_rural, p_status, p_phone, p_email, p_tc = (
            self._p
        )
        errors: list[RowError] | None = None
        col = self.col

        id_number = cells[p_id].strip().lstrip("'\t").upper()
        problem = id_number_problem(id_number)
        if problem is not None:
            errors = [RowError(row=row, column=col["id_number"], reason=problem)]

        name = cells[p_name].strip()
        school_code = cells[p_sc].strip()
        school_name = cells[p_sn].strip()
        county = cells[p_county].strip()
        city = cells[p_city].strip()
        if not (name and school_code and school_name and county and city):
            for field, value in (("name", name), ("school_code", school_code), ("school_name", school_name),
                                 ("county", county), ("city", city)):
                if not value:
                    errors = errors or []
                    errors.append(RowError(row=row, column=col[field], reason=f"missing {col[field]}"))

        stage_text = cells[p_stage].strip()
        stage = self._stages.get(stage_text)
        subject_text = cells[p_subj].strip()
        subject: str | None = None
        if stage is None:
            errors = errors or []
            reason = (f"missing {col['stage']}" if not stage_text
                      else f"unknown stage {stage_text!r} (expected one of {_STAGE_LABELS})")
            errors.append(RowError(row=row, column=col["stage"], reason=reason))
        elif stage == "kindergarten" and not self._subjects.get("kindergarten"):
            if subject_text.casefold() not in NO_SUBJECT:
                errors = errors or []
                errors.append(RowError(row=row, column=col["subject"],
                                       reason=f"kindergarten teachers have no subject; found {subject_text!r}"))
        else:
            subject = self._subjects.get(stage, {}).get(subject_text)
            if subject is None:
                errors = errors or []
                if not subject_text:
                    reason = f"missing {col['subject']} (one subject per teacher)"
                elif subject_text in self._any_subject:
                    reason = f"subject {subject_text!r} does not exist in stage {stage_text!r}"
                else:
                    reason = f"unknown subject {subject_text!r}"
                errors.append(RowError(row=row, column=col["subject"], reason=reason))

        rural_text = cells[p_rural]
        rural = RURAL_VALUES.get(rural_text.strip().casefold())
        if rural is None:
            errors = errors or []
            reason = (f"missing {col['rural']} (是 or 否)" if not rural_text.strip()
                      else f"rural flag must be 是 or 否 (or Y/N, 1/0); got {rural_text.strip()!r}")
            errors.append(RowError(row=row, column=col["rural"], reason=reason))

        status_text = cells[p_status]
        status = STATUS_VALUES.get(status_text.strip().casefold())
        if status is None:
            errors = errors or []
            reason = (f"missing {col['status']}" if not status_text.strip()
                      else f"unknown status {status_text.strip()!r} (在职 for serving teachers; 离职, 调出 or 退休 "
                           "for leavers)")
            errors.append(RowError(row=row, column=col["status"], reason=reason))

        phone = (cells[p_phone].strip() or None) if p_phone >= 0 else None
        if phone is not None and not phone.isdigit() and not _PHONE.fullmatch(phone):
            errors = errors or []
            errors.append(RowError(row=row, column=col["phone"], reason=f"not a phone number: {phone!r}"))
        email = (cells[p_email].strip() or None) if p_email >= 0 else None
        if email is not None and not _EMAIL.fullmatch(email):
            errors = errors or []
            errors.append(RowError(row=row, column=col["email"], reason=f"not an e-mail address: {email!r}"))
        teacher_code = (cells[p_tc].strip() or None) if p_tc >= 0 else None
        for field, text in (("name", name), ("school_code", school_code), ("school_name", school_name),
                            ("county", county), ("city", city), ("phone", phone), ("email", email),
                            ("teacher_code", teacher_code)):
            long = too_long(text or "", _ROSTER_MAX[field])
            if long is not None:
                errors = errors or []
                errors.append(RowError(row=row, column=col[field], reason=long))

        if errors:
            return InvalidRow(row, errors, id_number if problem is None else None)
        # tuple.__new__ skips the NamedTuple's Python-level __new__: a third of the time per row.
        return _new_tuple(RosterRow, (row, id_number, name, school_code, school_name, county, city, stage, subject,
                                      rural, status, phone, email, teacher_code, self.source_hash(cells)))

    def screen(self, rows: list[tuple[int, list[str]]]) -> tuple[list[str], list[str]] | None:
        """(normalised ID numbers, statuses) of a chunk whose every row passes `chunk`'s column-wise checks, so
        is valid; None when a row does not (then `chunk` says which and why). What a first sync's
        planner needs of the rows it neither keeps nor compares: building their RosterRows is a fifth of `chunk`.
        """
        if not rows:
            return [], []
        columns, bad = self._screen(rows)
        return None if bad else (columns[0], columns[9])

    def chunk(
        self, rows: list[tuple[int, list[str]]], hashes: bool = True
    ) -> tuple[list[RosterRow | InvalidRow], list[str | None]]:
        """Validate many rows at once: (items, their source hashes; None for invalid rows), the same as
        calling the validator on each row.

        Each check runs down a whole column with C-level map/zip, which is faster than a Python function
        per row; any row a fast check does not pass (a bad value, or merely an unusual spelling such as "Y"
        for the rural flag) goes through the per-row validator, so the per-row function alone decides what
        is valid and what the errors say. hashes=False leaves source_hash None (a first sync compares
        nothing, and hashing is a third of the work): RosterRow.row_hash then falls back to roster_hash.
        """
        n = len(rows)
        if n == 0:
            return [], []
        nums = list(map(itemgetter(0), rows))
        (ids, names, school_codes, school_names, counties, cities, stages, subjects, rurals, statuses, phone_texts,
         email_texts, code_texts), bad = self._screen(rows)
        subjects = list(map(_EMPTY_TO_NONE.get, subjects, subjects))
        phones = list(map(_EMPTY_TO_NONE.get, phone_texts, phone_texts))
        emails = list(map(_EMPTY_TO_NONE.get, email_texts, email_texts))
        codes = list(map(_EMPTY_TO_NONE.get, code_texts, code_texts))
        source: list[str | None] = (self._hashes(map(itemgetter(1), rows)) if hashes  # type: ignore[assignment]
                                    else [None] * n)
        items: list[RosterRow | InvalidRow] = list(map(_new_tuple, repeat(RosterRow), zip(
            nums, ids, names, school_codes, school_names, counties, cities, stages, subjects, rurals, statuses,
            phones, emails, codes, source, strict=True)))
        for i in bad:
            item = self(nums[i], rows[i][1])
            if isinstance(item, InvalidRow):
                source[i] = None
            elif not hashes:
                item = item._replace(source_hash=None)
            items[i] = item
        return items, source

    def _screen(self, rows: list[tuple[int, list[str]]]) -> tuple[list[list[Any]], set[int]]:
        """`chunk`'s column-wise checks of a non-empty chunk: the values of RosterRow's fields from id_number to
        teacher_code (subject, phone, email and teacher code as text, "" for none), and the indices of the
        rows a check did not pass."""
        columns = self._stripped(rows)
        (id_texts, names, school_codes, school_names, counties, cities, stage_texts, subject_texts, rural_texts,
         status_texts, phone_texts, email_texts, code_texts) = columns
        bad: set[int] = set()

        def flag(flags: Iterable[object]) -> None:
            flags = list(flags)
            if not all(flags):
                bad.update(i for i, ok in enumerate(flags) if not ok)

        ids = list(map(str.upper, map(str.lstrip, id_texts, repeat("'\t"))))
        if {*map(len, ids)} != {18}:
            lengths_ok = list(map(eq, map(len, ids), repeat(18)))
            flag(lengths_ok)
            checked = [v if ok else _VALID_ID for v, ok in zip(ids, lengths_ok, strict=True)]
        else:
            checked = ids
        # The whole column as one text of 18-character numbers: its shape is checked by a few C calls per
        # chunk (17 ASCII digits then a digit or X, each), the check characters are every 18th from the 18th.
        joined = "".join(checked)
        last = joined[17::18]
        if not (joined.isascii() and joined.replace("X", "0").isdigit() and joined.count("X") == last.count("X")):
            shape_ok = list(map(and_, map(str.isascii, checked), map(str.isdigit, map(_FIRST17, checked))))
            shape_ok = list(map(and_, shape_ok, map(_DIGITS.__contains__, map(_LAST, checked))))
            flag(shape_ok)
            checked = [v if ok else _VALID_ID for v, ok in zip(checked, shape_ok, strict=True)]
            last = "".join(map(_LAST, checked))
        births = list(map(_BIRTHS.__getitem__, map(_BIRTH, checked)))
        if min(births) < 0:
            flag(map(ge, births, repeat(0)))
        sums = map(add, map(add, map(_REGIONS.__getitem__, map(_REGION, checked)), births),
                   map(_SEQUENCES.__getitem__, map(_SEQ, checked)))
        checks = "".join(map(_CHECK_OF_SUM.__getitem__, sums))
        if checks != last:
            flag(map(eq, checks, last))

        for values in (names, school_codes, school_names, counties, cities):
            if "" in values:
                flag(values)
        for field, values in (("name", names), ("school_code", school_codes), ("school_name", school_names),
                              ("county", counties), ("city", cities), ("phone", phone_texts),
                              ("email", email_texts), ("teacher_code", code_texts)):
            limit = _ROSTER_MAX[field]
            if max(map(len, values)) > limit:
                flag(map(le, map(len, values), repeat(limit)))
        stages = list(map(self._stages.get, stage_texts))
        if None in stages:
            flag(stages)
        subjects = list(map(self._pairs.get, zip(stages, subject_texts, strict=True)))
        if None in subjects:
            flag(map(is_not, subjects, repeat(None)))
        rurals = list(map(RURAL_VALUES.get, rural_texts))
        if None in rurals:
            flag(map(is_not, rurals, repeat(None)))
        statuses = list(map(STATUS_VALUES.get, status_texts))
        if None in statuses:
            flag(statuses)
        if not all(map(str.isdigit, filter(None, phone_texts))):
            flag(not v or v.isdigit() for v in phone_texts)
        if any(email_texts) and not all(map(_EMAIL.fullmatch, filter(None, email_texts))):
            flag(not v or _EMAIL.fullmatch(v) for v in email_texts)
        return [ids, names, school_codes, school_names, counties, cities, stages, subjects, rurals, statuses,
                phone_texts, email_texts, code_texts], bad


class ValidatedRoster:
    """A re-iterable stream of `RosterRow | InvalidRow` over a roster Table (each pass re-reads the file).

    Per-row checks only; duplicates across rows are the plan's single pass (see plan.plan_roster), or
    `DuplicateTracker` when used on its own.
    """

    def __init__(self, table: Table, subjects: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.table = table
        self.validator = RosterValidator(table, subjects)
        self.id_column = table.column("id_number")

    def __iter__(self) -> Iterator[RosterRow | InvalidRow]:
        for items, _ in self.chunks():
            yield from items

    def chunks(
        self, size: int = 256, hashes: bool = True
    ) -> Iterator[tuple[list[RosterRow | InvalidRow], list[str | None]]]:
        """(items, source hashes) in file order, a few hundred rows at a time (see RosterValidator.chunk).

        Small chunks keep a chunk's strings in the CPU cache: 4096-row chunks are markedly slower."""
        chunk = self.validator.chunk
        for rows in self.table.chunks(size):
            yield chunk(rows, hashes)


class DuplicateTracker:
    """Finds keys (ID numbers, course codes) on more than one row, in one pass and bounded memory.

    Memory: one dict entry (key -> first row number) per distinct key; rows of duplicated keys only in
    `duplicates`. `add` returns False for the second and later rows of a key.
    """

    __slots__ = ("duplicates", "first")

    def __init__(self) -> None:
        self.first: dict[str, int] = {}
        self.duplicates: dict[str, list[int]] = {}

    def add(self, key: str, row: int) -> bool:
        first = self.first.setdefault(key, row)
        if first == row:
            return True
        rows = self.duplicates.get(key)
        if rows is None:
            self.duplicates[key] = [first, row]
        else:
            rows.append(row)
        return False

    def __contains__(self, key: object) -> bool:
        return key in self.duplicates

    def errors(self, column: str, what: str = "ID number", mask: bool = True) -> list[RowError]:
        """One error per row of every duplicated key, each naming the first rows of that key."""
        out: list[RowError] = []
        for key, rows in self.duplicates.items():
            reason = duplicate_reason(what, mask_id_number(key) if mask else key, rows, len(rows))
            out.extend(RowError(row=r, column=column, reason=reason) for r in rows)
        return out


DUP_ROWS_NAMED = 5


def duplicate_reason(what: str, shown: str, rows: list[int], total: int) -> str:
    """Why every row of a key found on `total` rows is rejected. Names at most the first few rows: a key on
    500,000 rows would otherwise put 500,000 row numbers into each of 500,000 messages."""
    named = ", ".join(map(str, rows[:DUP_ROWS_NAMED]))
    where = f"rows {named}" if total <= DUP_ROWS_NAMED else f"{total} rows ({named}, …)"
    return f"{what} {shown} is on {where}: every one of them is rejected, since nobody can tell which is right"


def find_duplicates(keys: Iterable[tuple[str, int]]) -> DuplicateTracker:
    """Duplicates among (key, row) pairs."""
    tracker = DuplicateTracker()
    for key, row in keys:
        tracker.add(key, row)
    return tracker


def validate_roster(
    table: Table, subjects: Mapping[str, Mapping[str, str]] | None = None
) -> tuple[list[RosterRow], list[RowError]]:
    """Whole-file validation for small files and tests: (good rows, errors sorted by row).

    Holds every row: the plan streams instead.
    """
    rows: list[RosterRow] = []
    errors: list[RowError] = []
    tracker = DuplicateTracker()
    for item in ValidatedRoster(table, subjects):
        if isinstance(item, InvalidRow):
            errors.extend(item.errors)
            if item.id_number is not None:
                tracker.add(item.id_number, item.row)
        else:
            tracker.add(item.id_number, item.row)
            rows.append(item)
    errors.extend(tracker.errors(table.column("id_number")))
    good = [r for r in rows if r.id_number not in tracker]
    errors.sort(key=lambda e: e.row)
    return good, errors


def _catalog_row(
    row: int, values: Mapping[str, str], table: Table, stages: dict[str, str], subjects: dict[str, dict[str, str]]
) -> CatalogRow | list[RowError]:
    errors: list[RowError] = []

    def err(field: str, reason: str) -> None:
        errors.append(RowError(row=row, column=table.column(field), reason=reason))

    code = values.get("code", "").strip()
    title = values.get("title", "").strip()
    if not code:
        err("code", f"missing {table.column('code')}")
    if not title:
        err("title", f"missing {table.column('title')}")
    kind_text = values.get("kind", "").strip()
    kind = CATALOG_KINDS.get(kind_text.casefold())
    if kind is None:
        err("kind", f"unknown kind {kind_text!r} (lesson_case, required, elective or task)" if kind_text
            else f"missing {table.column('kind')}")
    mode_text = values.get("mode", "").strip()
    mode = MODES.get(mode_text.casefold())
    if mode is None:
        err("mode", f"unknown mode {mode_text!r} (online or offline)")
    hours_text = values.get("hours", "").strip()
    hours = Decimal(0)
    try:
        hours = Decimal(hours_text)
        if not hours.is_finite() or hours < 0 or hours > 1000:
            err("hours", f"hours must be a number from 0 to 1000; got {hours_text!r}")
    except InvalidOperation:
        err("hours", f"hours must be a number; got {hours_text!r}" if hours_text
            else f"missing {table.column('hours')}")
    stage_text = values.get("stage", "").strip()
    stage = stages.get(stage_text) if stage_text else None
    if stage_text and stage is None:
        err("stage", f"unknown stage {stage_text!r} (expected one of {_STAGE_LABELS})")
    subject_text = values.get("subject", "").strip()
    subject: str | None = None
    if subject_text.casefold() not in NO_SUBJECT:
        if stage is None and not stage_text:
            err("subject", "a subject needs a stage")
        elif stage is not None:
            subject = subjects.get(stage, {}).get(subject_text)
            if subject is None:
                err("subject", f"subject {subject_text!r} does not exist in stage {stage_text!r}")
    if kind == "lesson_case":
        if stage is None and not stage_text:
            err("stage", "a lesson case needs a stage")
        elif stage not in (None, "kindergarten") and subject is None and subject_text.casefold() in NO_SUBJECT:
            err("subject", "a lesson case needs a subject")
    recorded_text = normalise_id_number(values.get("recorded_by", ""))
    recorded_by = recorded_text or None
    if recorded_by is not None:
        problem = id_number_problem(recorded_by)
        if problem is not None:
            err("recorded_by", problem)
    topic = values.get("topic", "").strip() or None
    city = values.get("city", "").strip() or None
    for field, value in (("code", code), ("title", title), ("topic", topic), ("city", city)):
        reason = too_long(value or "", _CATALOG_MAX[field])
        if reason is not None:
            err(field, reason)
    if errors:
        return errors
    return CatalogRow(row=row, code=code, title=title, kind=kind, topic=topic, mode=mode,
                      hours=hours, stage=stage, subject=subject, city=city, recorded_by=recorded_by)


def validate_catalog(
    table: Table, subjects: Mapping[str, Mapping[str, str]] | None = None
) -> tuple[list[CatalogRow], list[RowError]]:
    """(good courses, errors by row). A code on several rows rejects all of them, naming every row."""
    stages = _stage_table()
    subject_tables = _subject_tables(subjects if subjects is not None else SUBJECTS)
    good: list[CatalogRow] = []
    errors: list[RowError] = []
    tracker = DuplicateTracker()
    for row, values in table.dicts():
        item = _catalog_row(row, values, table, stages, subject_tables)
        code = values.get("code", "").strip()
        if code:
            tracker.add(code, row)
        if isinstance(item, list):
            errors.extend(item)
        else:
            good.append(item)
    errors.extend(tracker.errors(table.column("code"), what="course code", mask=False))
    good = [c for c in good if c.code not in tracker]
    errors.sort(key=lambda e: e.row)
    return good, errors


def validate_topics(table: Table) -> tuple[list[TopicRow], list[RowError]]:
    """(good rows, errors by row): each row needs a school code and a topic; a repeated pair is ignored."""
    good: list[TopicRow] = []
    errors: list[RowError] = []
    seen: set[tuple[str, str]] = set()
    for row, values in table.dicts():
        school = values.get("school", "").strip()
        topic = values.get("topic", "").strip()
        if not school:
            errors.append(RowError(row=row, column=table.column("school"), reason=f"missing {table.column('school')}"))
        if not topic:
            errors.append(RowError(row=row, column=table.column("topic"), reason=f"missing {table.column('topic')}"))
        long = [(field, reason) for field, value in (("school", school), ("topic", topic))
                if (reason := too_long(value, _TOPICS_MAX[field])) is not None]
        errors.extend(RowError(row=row, column=table.column(field), reason=reason) for field, reason in long)
        if school and topic and not long and (school, topic) not in seen:
            seen.add((school, topic))
            good.append(TopicRow(row=row, school_code=school, topic=topic))
    return good, errors
