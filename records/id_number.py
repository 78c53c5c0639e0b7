"""The 18-digit resident ID number (GB 11643): format, ISO 7064 MOD 11-2 check digit, masking.

This module is the one statement of the rule: `id_number_problem` is the readable reference, tested against
python-stdnum's `cn.ric`; the roster's fast kernel (`sync/validation.py`) is built from the constants below
and tested equal to it. One rule stdnum has not: a birth year outside `BIRTH_YEARS` is refused, because no
teacher in a roster was born in 1850 and such a number is a typing error.
"""

from __future__ import annotations

import re
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"  # indexed by the weighted sum mod 11
BIRTH_YEARS = range(1900, 2101)
_SHAPE = re.compile(r"^\d{17}[\dX]$")
# An ID number inside free text: a Moodle debuginfo, a registry's rejection reason, an exception message,
# also glued to letters ("idnumber110105..."), which is how a careless message or a URL path writes it. Runs of
# 18 digits glued to letters are common in hashes and tokens too, so those count only when they are an ID number
# in full (check digit and birth date); a free-standing run is masked even when mistyped.
# Nor is the fractional part of a number below 1 ("0.037812098998983856", a duration on a metrics page: a
# float's 17 significant digits after "0.0" make 18 digits); after any other "N." a number is masked.
_IN_TEXT = re.compile(r"(?<!\d)(?<!\b0\.)\d{17}[\dXx](?!\d)")


class IdNumberError(ValueError):
    """The value is not a valid ID number. The message never repeats the number in full."""


def check_digit(first17: str) -> str:
    return CHECK_CHARACTERS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def mask_id_number(value: str | None) -> str:
    """Region code and last two characters only: enough to find a row, useless to anyone else."""
    if not value:
        return ""
    v = str(value)
    if len(v) <= 8:
        return "*" * len(v)
    return f"{v[:4]}{'*' * (len(v) - 6)}{v[-2:]}"


def _id_numbers_in(text: str) -> list[re.Match[str]]:
    found = []
    for m in _IN_TEXT.finditer(text):
        start, end = m.span()
        glued = (start > 0 and text[start - 1].isascii() and text[start - 1].isalpha()) or (
            end < len(text) and text[end].isascii() and text[end].isalnum())
        if not glued or id_number_problem(m.group(0).upper()) is None:
            found.append(m)
    return found


def mask_id_numbers(text: str) -> str:
    """`text` with every ID number in it masked (see mask_id_number)."""
    found = _id_numbers_in(text)
    if not found:
        return text
    parts: list[str] = []
    last = 0
    for m in found:
        parts += [text[last:m.start()], mask_id_number(m.group(0))]
        last = m.end()
    parts.append(text[last:])
    return "".join(parts)


def find_id_numbers(text: str) -> list[str]:
    """Every ID number in `text`, as written (the ones mask_id_numbers masks)."""
    return [m.group(0) for m in _id_numbers_in(text)]


def birth_date_valid(yyyymmdd: str) -> bool:
    """A real calendar date whose year is in BIRTH_YEARS."""
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return int(yyyymmdd[:4]) in BIRTH_YEARS


def id_number_problem(v: str) -> str | None:
    """Why `v` (already stripped and upper-cased) is not a valid ID number, or None. The reason never holds
    the number in full."""
    if not v:
        return "missing ID number"
    if len(v) != 18 or not v.isascii() or not _SHAPE.match(v):
        return f"ID number must be 17 digits and then a digit or X; got {len(v)} characters"
    if not birth_date_valid(v[6:14]):
        return f"ID number {mask_id_number(v)} has no valid birth date"
    if check_digit(v[:17]) != v[17]:
        return f"ID number {mask_id_number(v)} has a wrong check digit (ISO 7064 MOD 11-2)"
    return None


def validate_id_number(value: str) -> str:
    """Return the normalised number (upper-case X) or raise IdNumberError with a reason."""
    v = (value or "").strip().upper()
    problem = id_number_problem(v)
    if problem is not None:
        raise IdNumberError(problem)
    return v
