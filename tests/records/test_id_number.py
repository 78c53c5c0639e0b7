"""ISO 7064 MOD 11-2 check digits, and masking that never gives the whole number away."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from creditbridge.records import IdNumberError, LearningRecord, mask_id_number, validate_id_number
from creditbridge.records.id_number import BIRTH_YEARS, check_digit, id_number_problem
from creditbridge.sync.validation import id_number_problem as fast_id_number_problem

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


@given(st.from_regex(r"\A[1-6][0-9]{5}(19[5-9][0-9]|200[0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}\Z"))
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


def test_an_id_number_glued_to_letters_is_masked() -> None:
    from creditbridge.records import mask_id_numbers

    first17 = "37010219850101001"
    number = first17 + check_digit(first17)
    for text in (f"idnumber{number}", f"/users/u{number}x/", f"{number}abc", f"key={number}X1"):
        masked = mask_id_numbers(text)
        assert number not in masked, text
        assert mask_id_number(number) in masked, text
    # a run of 18 digits inside a hash or token is no ID number unless it is a valid one
    token = "a123456789012345678b"
    assert mask_id_numbers(token) == token
    # the fractional part of a number is none (a float's 18 digits after "0.", as a metrics page prints them)
    assert mask_id_numbers("creditbridge_store_scrape_duration_seconds 0.037812098998983856") == \
        "creditbridge_store_scrape_duration_seconds 0.037812098998983856"
    for listed in (f"1.{number} refused", f"10.{number} refused"):  # a numbered list item is masked
        assert number not in mask_id_numbers(listed), listed
    # a free-standing mistyped number is still masked: a typo is the same person's number
    wrong = first17 + ("0" if check_digit(first17) != "0" else "1")
    assert wrong not in mask_id_numbers(f"row 3: {wrong} refused")


def test_registry_error_text_is_masked() -> None:
    from creditbridge.connector.registry.errors import RegistryConflictError

    number = "37010219850101001X"
    error = RegistryConflictError(f"teacher {number} already has version 2", status=409)
    assert number not in str(error) and number not in error.message
    assert "3701" in str(error) and "status 409" in str(error)


# --- one rule: the reference against python-stdnum, the roster's fast kernel against the reference ---------

_ID_LIKE = st.one_of(
    # shaped like an ID number, any birth date and check character: most are invalid in one way or another
    st.from_regex(r"\A[0-9]{6}(18|19|20|21)[0-9]{2}[01][0-9][0-3][0-9]{4}[0-9X]\Z"),
    # valid numbers, so the kernel's "valid" answer is exercised as often as its refusals
    st.from_regex(r"\A[1-6][0-9]{5}(19[0-9]{2}|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}\Z").map(
        lambda f: f + check_digit(f)),
    st.text(alphabet="0123456789Xx -", max_size=20),
)


def _stdnum_valid(v: str) -> bool:
    """stdnum's cn.ric checks without its birth-place look-up (rosters carry region codes newer than its table,
    and creditbridge never refused a number for its region)."""
    from stdnum.cn import ric
    from stdnum.exceptions import ValidationError as StdnumError

    if len(v) != 18 or not all(c in "0123456789" for c in v[:-1]) or v[-1] != ric.calc_check_digit(v):
        return False
    try:
        ric.get_birth_date(v)
    except StdnumError:
        return False
    return True


@given(_ID_LIKE)
def test_reference_agrees_with_python_stdnum(value: str) -> None:
    """stdnum is the outside reference; the one rule it lacks is the plausible birth year."""
    v = value.strip().upper()
    in_years = len(v) == 18 and v[6:10].isdigit() and int(v[6:10]) in BIRTH_YEARS
    assert (id_number_problem(v) is None) == (_stdnum_valid(v) and in_years)


@given(_ID_LIKE)
def test_roster_fast_kernel_is_the_reference(value: str) -> None:
    v = value.strip().upper()
    assert fast_id_number_problem(v) == id_number_problem(v)


def test_the_number_the_two_validators_disagreed_on() -> None:
    """Born 1850: the roster refused it and the learning record accepted it. Now both refuse it alike."""
    v = "110105185001010021"
    assert id_number_problem(v) == fast_id_number_problem(v) == "ID number 1101************21 has no valid birth date"
    with pytest.raises(IdNumberError, match="birth date"):
        validate_id_number(v)


def test_digits_of_other_scripts_are_refused() -> None:
    """Arabic-Indic or full-width digits pass a Unicode \\d; int() would even read them. Not an ID number."""
    for v in ("10000٠200001010009", "３７0102198602110011"):
        assert id_number_problem(v) == fast_id_number_problem(v)
        with pytest.raises(IdNumberError, match="17 digits"):
            validate_id_number(v)
