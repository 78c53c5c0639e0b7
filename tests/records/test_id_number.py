"""ISO 7064 MOD 11-2 check digits, and masking that never gives the whole number away."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from creditbridge.records import IdNumberError, LearningRecord, mask_id_number, validate_id_number
from creditbridge.records.id_number import check_digit

# From the sd-2022 sample roster: an X check digit and a digit one.
GOOD = ["37010219890514004X", "370102198602110011", "11010519491231002X"]


@pytest.mark.parametrize("value", GOOD)
def test_valid_numbers(value: str) -> None:
    assert validate_id_number(value) == value


def test_lower_case_x_is_normalised() -> None:
    assert validate_id_number("37010219890514004x") == "37010219890514004X"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("370102198602110012", "check digit"),
        ("37010219860211001", "17 digits"),
        ("3701021986021100111", "17 digits"),
        ("37010219860231001X", "birth date"),
        ("", "missing"),
        ("37010219860211001Y", "17 digits"),
    ],
)
def test_invalid_numbers_say_why_without_the_number(value: str, reason: str) -> None:
    with pytest.raises(IdNumberError, match=reason) as err:
        validate_id_number(value)
    if value:
        assert value not in str(err.value)


@given(st.from_regex(r"\A[1-6]\d{5}(19[5-9]\d|200\d)(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}\Z"))
def test_every_computed_check_digit_validates(first17: str) -> None:
    number = first17 + check_digit(first17)
    assert validate_id_number(number) == number
    wrong = next(c for c in "0123456789X" if c != number[-1])
    with pytest.raises(IdNumberError):
        validate_id_number(first17 + wrong)


def test_mask_keeps_only_region_and_tail() -> None:
    masked = mask_id_number("37010219890514004X")
    assert masked == "3701************4X"
    assert "19890514" not in masked


def test_learning_record_checks_teacher_and_timezone() -> None:
    rec = LearningRecord(teacher="370102198602110011", programme="sd-2022", course="SD22-ETH-01", kind="course",
                         passed=True, occurred_at=datetime(2022, 9, 1, 2, tzinfo=UTC), source="s1")
    assert rec.kind == "course"
    with pytest.raises(ValidationError, match="check digit"):
        LearningRecord(teacher="370102198602110012", programme="sd-2022", course="C", kind="course",
                       occurred_at=datetime(2022, 9, 1, tzinfo=UTC), source="s2")
    with pytest.raises(ValidationError, match="UTC offset"):
        LearningRecord(teacher="370102198602110011", programme="sd-2022", course="C", kind="course",
                       occurred_at=datetime(2022, 9, 1), source="s3")


def test_mask_id_numbers_in_free_text() -> None:
    from creditbridge.records import mask_id_numbers

    first17 = "37010219850101001"
    number = first17 + check_digit(first17)
    text = f"user {number} refused; order 12345678901234567890 kept; ({number.lower()})"
    masked = mask_id_numbers(text)
    assert number not in masked and number.lower() not in masked
    assert masked.count(mask_id_number(number)) == 2
    assert "12345678901234567890" in masked  # 20 digits are no ID number


def test_registry_error_text_is_masked() -> None:
    from creditbridge.connector.registry.errors import RegistryConflictError

    number = "37010219850101001X"
    error = RegistryConflictError(f"teacher {number} already has version 2", status=409)
    assert number not in str(error) and number not in error.message
    assert "3701" in str(error) and "status 409" in str(error)
