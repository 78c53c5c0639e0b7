"""The 18-digit resident ID number (GB 11643): format, ISO 7064 MOD 11-2 check digit, masking."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
# An ID number inside free text: a Moodle debuginfo, a registry's rejection reason, an exception message.
_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


class IdNumberError(ValueError):
    """The value is not a valid ID number. The message never repeats the number in full."""


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def mask_id_number(value: str | None) -> str:
    """Region code and last two characters only: enough to find a row, useless to anyone else."""
    if not value:
        return ""
    v = str(value)
    if len(v) <= 8:
        return "*" * len(v)
    return f"{v[:4]}{'*' * (len(v) - 6)}{v[-2:]}"


def mask_id_numbers(text: str) -> str:
    """`text` with every ID number in it masked (see mask_id_number)."""
    return _IN_TEXT.sub(lambda m: mask_id_number(m.group(0)), text)


def find_id_numbers(text: str) -> list[str]:
    """Every ID number in `text`, as written (the pattern mask_id_numbers masks)."""
    return _IN_TEXT.findall(text)


def validate_id_number(value: str) -> str:
    """Return the normalised number (upper-case X) or raise IdNumberError with a reason."""
    v = (value or "").strip().upper()
    if not v:
        raise IdNumberError("missing ID number")
    if not _SHAPE.match(v):
        raise IdNumberError(f"ID number must be 17 digits and a digit or X, got {len(v)} characters")
    try:
        date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError as e:
        raise IdNumberError(f"ID number {mask_id_number(v)} has no valid birth date") from e
    if check_digit(v[:17]) != v[17]:
        raise IdNumberError(f"ID number {mask_id_number(v)} has a wrong check digit")
    return v
