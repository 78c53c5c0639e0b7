"""Every recorded answer body (JSON and XML) goes through the parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moodle_ws_fixtures import answer, request_fields, ws_calls

from creditbridge.connector import errors
from creditbridge.connector.parsing import parse_response

CALLS = list(ws_calls())


def _is_error(body: str) -> bool:
    return '"errorcode"' in body or "<EXCEPTION" in body


@pytest.mark.parametrize("entry", [e for _, e in CALLS], ids=[i for i, _ in CALLS])
def test_every_recorded_body_parses(entry: dict) -> None:
    body = entry["response"]["body"]
    fmt = "xml" if entry["response"]["content_type"].startswith("application/xml") else "json"
    if _is_error(body):
        with pytest.raises(errors.MoodleError) as info:
            parse_response(body, fmt=fmt, function=entry["function"])
        if fmt == "json":
            assert info.value.errorcode == json.loads(body)["errorcode"]
        else:
            assert f"<ERRORCODE>{info.value.errorcode}</ERRORCODE>" in body
        assert type(info.value) is not errors.ProtocolError
    else:
        value = parse_response(body, fmt=fmt)
        if body == "null":
            assert value is None
        elif fmt == "json":
            assert value == json.loads(body)
        else:
            assert isinstance(value, list | dict)


def _as_xml_strings(value: Any) -> Any:
    """What the JSON value looks like once Moodle has written it as XML (every leaf a string).

    Optional keys JSON leaves out come back in XML as <VALUE null="null"/> or an empty <MULTIPLE/>, so
    None-valued and empty-list keys are dropped on both sides before comparing.
    """
    if isinstance(value, dict):
        return {k: _as_xml_strings(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_as_xml_strings(v) for v in value]
    if isinstance(value, bool):
        return "1" if value else "0"
    return None if value is None else str(value)


def _records(value: Any) -> dict[str, Any]:
    """Every dict with an "id" anywhere in an answer, by id (to match one record across two answers)."""
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        if "id" in value and ("username" in value or "shortname" in value):
            found[str(value["id"])] = value
        for v in value.values():
            found.update(_records(v))
    elif isinstance(value, list):
        for v in value:
            found.update(_records(v))
    return found


def _pairs() -> list[tuple[str, Any, Any]]:
    """(title, XML value, JSON value) for the same record read once in XML and once in JSON."""
    out = []
    for xml_id, xml in CALLS:
        if not xml["response"]["content_type"].startswith("application/xml") or _is_error(xml["response"]["body"]):
            continue
        xml_value = parse_response(xml["response"]["body"], fmt="xml")
        want = {k: v for k, v in request_fields(xml).items() if k != "moodlewsrestformat"}
        for js_id, js in CALLS:
            # Only within one recording file: each file was recorded on a site of its own, where the same
            # request finds another record (roles.json's tch100001 is not users.json's).
            same_file = js_id.partition("[")[0] == xml_id.partition("[")[0]
            is_json = js["response"]["content_type"] == "application/json"
            if not same_file or not is_json or js["function"] != xml["function"]:
                continue
            js_value = json.loads(js["response"]["body"])
            if {k: v for k, v in request_fields(js).items() if k != "moodlewsrestformat"} == want:
                out.append((xml["title"], xml_value, js_value))
                break
            xml_records, js_records = _records(xml_value), _records(js_value)
            common = sorted(set(xml_records) & set(js_records))
            if common:
                out.append((xml["title"], xml_records[common[0]], js_records[common[0]]))
                break
    return out


PAIRS = _pairs()


def test_fixtures_have_xml_json_pairs() -> None:
    assert len(PAIRS) >= 3


@pytest.mark.parametrize(("xml_value", "js_value"), [(x, j) for _, x, j in PAIRS], ids=[t for t, _, _ in PAIRS])
def test_xml_parses_to_the_json_structure(xml_value: Any, js_value: Any) -> None:
    assert _as_xml_strings(xml_value) == _as_xml_strings(js_value)


@pytest.mark.parametrize(("function", "title", "cls", "code"), [
    ("core_webservice_get_site_info", "Invalid token", errors.InvalidTokenError, "invalidtoken"),
    ("core_group_create_groups", "not in the service", errors.FunctionNotInServiceError, "accessexception"),
    ("local_nosuch_function", "", errors.UnknownFunctionError, "invalidrecord"),
    ("core_course_get_contents", "courseid=abc", errors.InvalidParameterError, "invalidparameter"),
    ("core_user_create_users", "Capability missing", errors.AccessDeniedError, "nopermissions"),
    ("core_course_get_contents", "invalidrecord", errors.RecordNotFoundError, "invalidrecord"),
    ("core_webservice_get_site_info", "without webservice/rest:use", errors.AccessDeniedError, "accessexception"),
])
def test_errors_get_their_class(function: str, title: str, cls: type, code: str) -> None:
    with pytest.raises(cls) as info:
        parse_response(answer(function, title), function=function)
    assert info.value.errorcode == code
    assert info.value.function == function
    assert info.value.message


def test_rest_capability_missing_is_not_called_function_outside_service() -> None:
    with pytest.raises(errors.AccessDeniedError) as info:
        parse_response(answer("core_webservice_get_site_info", "without webservice/rest:use"))
    assert not isinstance(info.value, errors.FunctionNotInServiceError)


def test_production_style_accessexception_is_function_not_in_service() -> None:
    body = ('{"exception":"webservice_access_exception","errorcode":"accessexception",'
            '"message":"Access control exception"}')
    with pytest.raises(errors.FunctionNotInServiceError):
        parse_response(body)


def test_debug_duplicate_username_is_duplicate_error() -> None:
    with pytest.raises(errors.DuplicateError) as info:
        parse_response(answer("core_user_create_users", "Duplicate username [debug"))
    assert info.value.errorcode == "invalidparameter"
    assert isinstance(info.value, errors.MoodleError)


@pytest.mark.parametrize("body", ["", "<html><body>502 Bad Gateway</body></html>", "{not json",
                                  "<RESPONSE><X/></RESPONSE>"])
def test_garbage_is_a_protocol_error_not_an_empty_result(body: str) -> None:
    with pytest.raises(errors.ProtocolError):
        parse_response(body, function="core_user_get_users")


def test_xml_null_value_and_empty_response() -> None:
    body = '<?xml version="1.0"?><RESPONSE><SINGLE><KEY name="a"><VALUE null="null"/></KEY></SINGLE></RESPONSE>'
    assert parse_response(body, fmt="xml") == {"a": None}
    assert parse_response("<RESPONSE></RESPONSE>", fmt="xml") is None


def test_id_numbers_in_moodle_text_are_masked() -> None:
    body = json.dumps({"exception": "core\\exception\\invalid_parameter_exception", "errorcode": "invalidparameter",
                       "message": "Invalid parameter value detected",
                       "debuginfo": "ID number already used: 11010519491231002X"})
    with pytest.raises(errors.DuplicateError) as info:
        parse_response(body)
    assert "11010519491231002X" not in str(info.value)
    assert "1101" in info.value.debuginfo and "2X" in info.value.debuginfo
