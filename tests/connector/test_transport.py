"""Retry, timeout and error paths of the HTTP layer, driven through MoodleClient with `responses`."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from moodle_ws_fixtures import answer

from creditbridge.connector import errors
from creditbridge.connector.moodle import MoodleClient
from creditbridge.connector.transport import RetryPolicy

URL = "http://moodle.test"
ENDPOINT = URL + "/webservice/rest/server.php"
TOKEN = "s3cr3ttoken0123456789abcdef000000"
SITE_INFO = answer("core_webservice_get_site_info", "JSON, POST")


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> MoodleClient:
    return MoodleClient.from_url(URL, TOKEN, retries=3, backoff_seconds=0.01, sleep=sleeps.append)


def _form(call: responses.Call) -> dict[str, str]:
    return dict(parse_qsl(call.request.body))


@responses.activate
def test_token_in_post_body_not_url_and_json_format(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body=SITE_INFO, content_type="application/json")
    info = client.get_site_info()
    assert info["sitename"] == "Local Moodle WS Test"
    sent = responses.calls[0]
    assert TOKEN not in sent.request.url
    assert _form(sent) == {"wstoken": TOKEN, "wsfunction": "core_webservice_get_site_info",
                           "moodlewsrestformat": "json"}


@responses.activate
def test_xml_format_omits_moodlewsrestformat_and_parses() -> None:
    client = MoodleClient.from_url(URL, TOKEN, format="xml")
    responses.post(ENDPOINT, body=answer("core_webservice_get_site_info", "default XML"),
                   content_type="application/xml; charset=utf-8")
    assert client.get_site_info()["userid"] == "2"
    assert "moodlewsrestformat" not in _form(responses.calls[0])


@responses.activate
def test_read_503_then_200_is_retried(client: MoodleClient, sleeps: list[float]) -> None:
    responses.post(ENDPOINT, status=503, body="Service Unavailable")
    responses.post(ENDPOINT, body=SITE_INFO, content_type="application/json")
    assert client.get_site_info()["userid"] == 2
    assert len(responses.calls) == 2
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.01


@responses.activate
def test_read_gives_up_after_retries(client: MoodleClient, sleeps: list[float]) -> None:
    responses.post(ENDPOINT, status=502)
    with pytest.raises(errors.TransientError) as info:
        client.get_site_info()
    assert info.value.status == 502 and info.value.retryable
    assert len(responses.calls) == 4
    assert len(sleeps) == 3


@responses.activate
def test_write_is_not_retried_on_503(client: MoodleClient) -> None:
    responses.post(ENDPOINT, status=503)
    with pytest.raises(errors.TransientError):
        client.call("enrol_manual_enrol_users", enrolments=[{"roleid": 5, "userid": 3, "courseid": 2}])
    assert len(responses.calls) == 1
    assert client.write_calls == 1


@responses.activate
def test_write_declared_safe_is_retried(client: MoodleClient) -> None:
    responses.post(ENDPOINT, status=503)
    responses.post(ENDPOINT, body="null", content_type="application/json")
    params = {"enrolments": [{"roleid": 5, "userid": 3, "courseid": 2}]}
    assert client.call_with("enrol_manual_enrol_users", params, safe=True) is None
    assert len(responses.calls) == 2


@responses.activate
def test_timeout_becomes_transient_error(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(errors.TransientError) as info:
        client.call("enrol_manual_unenrol_users", enrolments=[{"userid": 3, "courseid": 2}])
    assert "timed out" in str(info.value)
    assert isinstance(info.value.__cause__, requests.ReadTimeout)


@responses.activate
def test_connection_error_becomes_transient_error(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body=requests.ConnectionError("refused"))
    with pytest.raises(errors.TransientError):
        client.get_site_info()
    assert len(responses.calls) == 4


def test_every_request_has_connect_and_read_timeouts(client: MoodleClient) -> None:
    assert client.transport.timeout == (5.0, 30.0)
    adapter = client.transport.session.get_adapter(ENDPOINT)
    assert adapter.max_retries.connect == 3 and adapter.max_retries.read == 0


def test_sessions_are_not_shared() -> None:
    a, b = MoodleClient.from_url(URL, TOKEN), MoodleClient.from_url(URL, TOKEN)
    assert a.transport.session is not b.transport.session


@responses.activate
def test_wrong_token(client: MoodleClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(ENDPOINT, body=answer("core_webservice_get_site_info", "Invalid token [debug"),
                   content_type="application/json")
    with pytest.raises(errors.InvalidTokenError) as info:
        client.get_site_info()
    assert info.value.errorcode == "invalidtoken"
    assert len(responses.calls) == 1  # not retryable
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert TOKEN not in caplog.text


@responses.activate
def test_function_outside_service(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body=answer("core_group_create_groups"), content_type="application/xml")
    with pytest.raises(errors.FunctionNotInServiceError) as info:
        client.call("core_group_create_groups", groups=[{"courseid": 2, "name": "g1"}])
    assert info.value.errorcode == "accessexception"
    assert info.value.function == "core_group_create_groups"


@responses.activate
def test_invalid_parameter_keeps_errorcode(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body=answer("core_course_get_contents", "courseid=abc"), content_type="application/json")
    with pytest.raises(errors.InvalidParameterError) as info:
        client.call("core_course_get_contents", courseid="abc")
    assert info.value.errorcode == "invalidparameter"
    assert len(responses.calls) == 1


@responses.activate
def test_html_error_page_is_protocol_error(client: MoodleClient) -> None:
    responses.post(ENDPOINT, body="<html><body>Login</body></html>", status=200, content_type="text/html")
    with pytest.raises(errors.ProtocolError):
        client.get_users_by_field("username", ["a"])


@responses.activate
def test_404_says_check_the_url(client: MoodleClient) -> None:
    responses.post(ENDPOINT, status=404, body="not found")
    with pytest.raises(errors.ProtocolError, match="site's root"):
        client.get_site_info()


@responses.activate
def test_token_echoed_by_a_proxy_is_scrubbed(client: MoodleClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(ENDPOINT, body=f"<html>bad request wstoken={TOKEN}</html>", content_type="text/html")
    with pytest.raises(errors.ProtocolError) as info:
        client.get_site_info()
    assert TOKEN not in str(info.value)
    responses.post(ENDPOINT, status=503)
    with pytest.raises(errors.TransientError):
        client.get_site_info()
    assert TOKEN not in caplog.text


def test_backoff_grows_with_jitter_and_cap() -> None:
    policy = RetryPolicy(retries=5, backoff_seconds=1.0, max_backoff_seconds=4.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        delays = {policy.sleep_time(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1
    assert policy.sleep_time(0, retry_after=3.0) >= 3.0
    transient = errors.TransientError("x")
    assert policy.should_retry(0, transient, safe=True)
    assert not policy.should_retry(0, transient, safe=False)
    assert not policy.should_retry(5, transient, safe=True)
    assert not policy.should_retry(0, errors.InvalidParameterError("x"), safe=True)


def test_refused_connection_is_retried_by_the_adapter_only() -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    sleeps: list[float] = []
    client = MoodleClient.from_url(f"http://127.0.0.1:{port}", TOKEN, retries=2, backoff_seconds=0.01,
                                   sleep=sleeps.append)
    started = time.monotonic()
    with pytest.raises(errors.TransientError) as info:
        client.get_site_info()
    assert info.value.exhausted and "cannot connect" in str(info.value)
    assert client.transport.requests_made == 1 and sleeps == []  # no second layer of retries
    assert time.monotonic() - started < 5
