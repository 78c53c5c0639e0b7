"""Every recorded exchange in the shared Moodle transcripts, replayed against the sandbox."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fixture_paths import fixture
from replay import RECORDING_ORDER, SEPARATE_SITES, Exchange, Replayer, load, mismatch

FIXTURES = fixture("moodle-ws")

_results: dict[tuple[str, bool], dict[int, Exchange]] = {}


def replayed(name: str, *, debug: bool | None = None) -> dict[int, Exchange]:
    """The file's exchanges as the sandbox answered them, on a fresh site rebuilt by the files recorded before."""
    debug = name == "errors_debug.json" if debug is None else debug
    key = (name, debug)
    if key not in _results:
        separate = name in SEPARATE_SITES
        replayer = Replayer(debug=debug, site="roles" if separate else "recordings")
        try:
            for earlier in [] if separate else RECORDING_ORDER[:RECORDING_ORDER.index(name)]:
                replayer.replay(earlier, load(earlier, FIXTURES)["entries"])
            _results[key] = {ex.index: ex for ex in replayer.replay(name, load(name, FIXTURES)["entries"])}
        finally:
            replayer.close()
    return _results[key]


def _exchanges() -> Iterator[Any]:
    for name in RECORDING_ORDER + SEPARATE_SITES:
        for index, entry in enumerate(load(name, FIXTURES)["entries"]):
            if entry["kind"] == "ws_call":
                yield pytest.param(name, index, id=f"{name.removesuffix('.json')}#{index:02d} {entry['title']}")


@pytest.mark.parametrize(("name", "index"), list(_exchanges()))
def test_exchange_matches_recording(name: str, index: int) -> None:
    problem = mismatch(replayed(name)[index])
    assert problem is None, problem


def test_every_ws_call_is_replayed() -> None:
    total = sum(1 for name in RECORDING_ORDER + SEPARATE_SITES for e in load(name, FIXTURES)["entries"]
                if e["kind"] == "ws_call")
    assert len(list(_exchanges())) == total == 163


@pytest.mark.parametrize("index", [i for i, e in enumerate(load("errors_debug.json", FIXTURES)["entries"])
                                   if e["kind"] == "ws_call"])
def test_production_mode_gives_the_same_errors_without_debuginfo(index: int) -> None:
    ex = replayed("errors_debug.json", debug=False)[index]
    assert "debuginfo" not in ex.body and "DEBUGINFO" not in ex.body
    problem = mismatch(ex, strip_debuginfo=True)
    assert problem is None, problem
    if ex.headers["Content-Type"] == "application/json":
        answer = json.loads(ex.body)
        if answer["errorcode"] == "invalidparameter":
            assert answer == {"exception": "core\\exception\\invalid_parameter_exception",
                              "errorcode": "invalidparameter", "message": "Invalid parameter value detected"}


def _tampered(name: str, index: int, old: str, new: str) -> Exchange:
    ex = replayed(name)[index]
    assert old in ex.body
    return Exchange(ex.name, ex.index, ex.entry, ex.status, ex.headers, ex.body.replace(old, new, 1))


def test_the_comparison_catches_differences() -> None:
    """The contract is only as strong as the comparison: ids, error codes and XML nulls must all count."""
    assert mismatch(_tampered("users.json", 1, '"id":6', '"id":60')) is not None
    assert mismatch(_tampered("users.json", 2, "invalidparameter", "invalidrecord")) is not None
    assert mismatch(_tampered("users.json", 22, '<KEY name="address"><VALUE null="null"/>\n</KEY>\n', "")) is not None
    assert mismatch(_tampered("courses.json", 23, "<VALUE>Wellbeing</VALUE>", "<VALUE>Pedagogy</VALUE>")) is not None
    assert mismatch(_tampered("errors_debug.json", 7, '"courseid =>', '"id =>')) is not None
    assert mismatch(_tampered("limits.json", 3, '"id":19', '"id":20')) is not None
    assert mismatch(_tampered("roles.json", 4, "(Change course category)", "(Change course full name)")) is not None
    assert mismatch(_tampered("roles.json", 3, '"idnumber"', '"email":"tch100001@example.org","idnumber"')) \
        is not None


def test_key_order_counts() -> None:
    ex = replayed("users.json")[0]
    swapped = Exchange(ex.name, ex.index, ex.entry, ex.status, ex.headers,
                       ex.body.replace('{"id":5,"username":"tch100001"}', '{"username":"tch100001","id":5}'))
    assert mismatch(swapped) is not None


def _text(body: str) -> str:
    body = re.sub(r"(?<!\d)1[789]\d{8}(?!\d)", "<time>", body)
    body = re.sub(r'"contextid":\d+', '"contextid":<ctx>', body)
    body = re.sub(r"pluginfile\.php\\/\d+\\/", "pluginfile.php\\/<ctx>\\/", body)
    return re.sub(r'"userprivateaccesskey":"[^"]*"', '"userprivateaccesskey":"<key>"', body)


@pytest.mark.parametrize("name", RECORDING_ORDER + SEPARATE_SITES)
def test_json_text_is_what_php_prints(name: str) -> None:
    """Byte for byte (times and context ids aside): PHP's json_encode escapes "/" and non-ASCII characters."""
    checked = 0
    for ex in replayed(name).values():
        rec = ex.entry["response"]
        if rec["content_type"] != "application/json" or rec.get("body_elided") or \
                ex.entry.get("function") == "core_course_get_contents":
            continue
        assert _text(ex.body) == _text(rec["body"]), f"{name}#{ex.index}"
        checked += 1
    assert checked > 0
