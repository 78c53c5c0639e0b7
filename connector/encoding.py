"""Moodle's REST parameter encoding: nested lists/dicts flattened into `a[0][b]=...` form fields.

Moodle's PARAM_BOOL rejects "True"/"False", and PARAM_INT rejects ISO dates, so booleans go as 1/0
and dates/datetimes as Unix timestamps. `None` means "not given" and is left out entirely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def encode_scalar(value: Any) -> str:
    """One leaf value as the string Moodle's parameter validation accepts."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # A naive datetime is ambiguous; Moodle stores UTC timestamps, so naive means UTC.
            value = value.replace(tzinfo=UTC)
        return str(int(value.timestamp()))
    if isinstance(value, date):
        return str(int(datetime.combine(value, time(0, 0), tzinfo=UTC).timestamp()))
    if isinstance(value, Enum):
        return encode_scalar(value.value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, int | Decimal | str):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as a Moodle parameter")


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten a parameter structure into ordered form fields, e.g. users[0][customfields][0][type]."""
    fields: list[tuple[str, str]] = []
    for name, value in params.items():
        _encode_into(fields, name, value)
    return fields


def _encode_into(fields: list[tuple[str, str]], prefix: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _encode_into(fields, f"{prefix}[{key}]", sub)
    elif isinstance(value, list | tuple):
        for index, sub in enumerate(value):
            _encode_into(fields, f"{prefix}[{index}]", sub)
    elif isinstance(value, set | frozenset):
        # Sets have no order; sort so a request (and its tests) are reproducible.
        for index, sub in enumerate(sorted(value)):
            _encode_into(fields, f"{prefix}[{index}]", sub)
    else:
        fields.append((prefix, encode_scalar(value)))


def split_key(key: str) -> list[str]:
    """`users[0][customfields][1][type]` -> ["users", "0", "customfields", "1", "type"]."""
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    parts = _KEY_PART.findall("[" + rest)
    if "".join(f"[{p}]" for p in parts) != "[" + rest:
        raise ValueError(f"malformed parameter name: {key!r}")
    return [head, *parts]


def decode_params(fields: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The inverse of `encode_params` (values stay strings): used for `moodle call` and for tests.

    A level whose keys are all 0..n-1 integers becomes a list, as PHP would treat it for Moodle's
    external_multiple_structure.
    """
    root: dict[str, Any] = {}
    for key, value in fields:
        parts = split_key(key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"parameter {key!r} conflicts with a scalar given earlier")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"parameter {key!r} conflicts with a structure given earlier")
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        indexes = sorted(int(k) for k in converted)
        if indexes == list(range(len(indexes))):
            return [converted[str(i)] for i in indexes]
    return converted
