"""Moodle's bracket parameter encoding, checked against every recorded request."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moodle_ws_fixtures import request_fields, ws_calls

from creditbridge.connector.encoding import decode_params, encode_params, split_key

CALLS = list(ws_calls())


@pytest.mark.parametrize(("entry"), [e for _, e in CALLS], ids=[i for i, _ in CALLS])
def test_recorded_request_round_trips(entry: dict) -> None:
    fields = list(request_fields(entry).items())
    structure = decode_params(fields)
    assert encode_params(structure) == fields


def test_decoded_structure_is_nested_lists_and_dicts() -> None:
    entry = next(e for i, e in CALLS if i.startswith("users") and e["function"] == "core_user_create_users")
    structure = decode_params(request_fields(entry).items())
    user = structure["users"][0]
    assert user["username"] == "tch100001"
    assert user["customfields"][3] == {"type": "rural", "value": "1"}


def test_booleans_dates_and_none() -> None:
    fields = encode_params({
        "courses": [{
            "visible": True, "enablecompletion": False,
            "startdate": date(2025, 1, 1), "enddate": None,
            "timestart": datetime(2025, 1, 1, 8, 0, tzinfo=UTC),
            "customfields": [{"shortname": "credit_hours", "value": 7.5}],
        }],
    })
    assert fields == [
        ("courses[0][visible]", "1"),
        ("courses[0][enablecompletion]", "0"),
        ("courses[0][startdate]", "1735689600"),
        ("courses[0][timestart]", "1735718400"),
        ("courses[0][customfields][0][shortname]", "credit_hours"),
        ("courses[0][customfields][0][value]", "7.5"),
    ]


def test_unencodable_value_is_refused() -> None:
    with pytest.raises(TypeError):
        encode_params({"x": object()})


def test_malformed_key_is_refused() -> None:
    assert split_key("users[0][email]") == ["users", "0", "email"]
    with pytest.raises(ValueError, match="malformed"):
        split_key("users[0]x[email]")
    with pytest.raises(ValueError, match="conflicts"):
        decode_params([("a", "1"), ("a[0]", "2")])


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_leaves = st.text(max_size=12)
_trees = st.recursive(
    _leaves,
    lambda children: st.lists(children, min_size=1, max_size=4)
    | st.dictionaries(_names, children, min_size=1, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(_names, _trees, min_size=1, max_size=4))
def test_encode_then_decode_is_identity(params: dict) -> None:
    assert decode_params(encode_params(params)) == params
