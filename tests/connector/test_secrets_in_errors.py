"""Moodle (on a debug site) echoes rejected values in debuginfo: no full ID number or token may reach an
exception, a batch result, the log or `moodle call`'s output."""

from __future__ import annotations

import json
import logging

import pytest
import responses
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.connector import errors
from creditbridge.connector.moodle import MoodleClient

URL = "http://moodle.test"
ENDPOINT = URL + "/webservice/rest/server.php"
TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
ID_NUMBER = "37010219850101001X"
ECHO = json.dumps({
    "exception": "invalid_parameter_exception", "errorcode": "invalidparameter",
    "message": f"Invalid parameter value detected (idnumber {ID_NUMBER})",
    "debuginfo": ("users => Invalid parameter value detected (0 => Invalid parameter value detected (idnumber => "
                  f"Invalid parameter value detected (the value is \"{ID_NUMBER}\", token {TOKEN})))"),
})


@responses.activate
def test_failed_bulk_write_never_shows_the_full_id_number(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(ENDPOINT, body=ECHO, content_type="application/json")
    client = MoodleClient.from_url(URL, TOKEN, retries=0, backoff_seconds=0)
    result = client.create_users([{"idnumber": ID_NUMBER, "firstname": "F", "lastname": "L",
                                   "email": "f@example.org", "auth": "manual"}], precheck=False)
    assert not result.ok and len(result.failed) == 1
    _item, error = result.failed[0]
    shown = json.dumps(result.as_json()) + str(error) + repr(error) + json.dumps(error.as_json()) + caplog.text
    assert ID_NUMBER not in shown and TOKEN not in shown
    assert "3701" in json.dumps(result.as_json()) and "1X" in str(error)  # masked, still recognisable


@responses.activate
def test_single_call_error_and_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(ENDPOINT, body=ECHO, content_type="application/json")
    client = MoodleClient.from_url(URL, TOKEN, retries=0, backoff_seconds=0)
    with pytest.raises(errors.InvalidParameterError) as info:
        client.get_users_by_field("idnumber", [ID_NUMBER])
    logging.getLogger("test").exception("call failed", exc_info=info.value)
    assert ID_NUMBER not in str(info.value) + (info.value.debuginfo or "") + caplog.text
    assert TOKEN not in str(info.value) + caplog.text


@responses.activate
def test_moodle_call_output_masks_what_moodle_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    responses.post(ENDPOINT, body=ECHO, content_type="application/json")
    monkeypatch.setenv("CREDITBRIDGE_MOODLE_URL", URL)
    monkeypatch.setenv("CREDITBRIDGE_MOODLE_TOKEN", TOKEN)
    monkeypatch.delenv("CREDITBRIDGE_CONFIG", raising=False)
    runner = CliRunner()
    for extra in ([], ["--json"]):
        result = runner.invoke(cli, ["moodle", "call", "core_user_get_users_by_field", "field=idnumber",
                                     f"values[0]={ID_NUMBER}", *extra])
        assert result.exit_code == 2
        assert "invalidparameter" in result.output
        assert ID_NUMBER not in result.output and TOKEN not in result.output
