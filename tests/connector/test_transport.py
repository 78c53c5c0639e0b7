"""Retry, timeout and error paths of the HTTP layer, driven through MoodleClient with `responses`."""

from __future__ import annotations

import logging
import random
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from moodle_ws_fixtures import answer

from creditbridge.connector import errors
from creditbridge.connector.moodle import MoodleClient
from creditbridge.connector.retry import RetryPolicy, parse_retry_after

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


@responses.activate
def test_every_request_has_connect_and_read_timeouts(client: MoodleClient) -> None:
    assert client.transport.timeout == (5.0, 30.0)
    responses.post(ENDPOINT, body=SITE_INFO, content_type="application/json")
    client.get_site_info()
    assert responses.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)
    # No second layer of retries under the policy's: urllib3 retries nothing, not even a refused connection.
    assert client.transport.session.get_adapter(ENDPOINT).max_retries.total == 0


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


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy = RetryPolicy(retries=5, backoff_seconds=1.0, max_backoff_seconds=4.0, rng=random.Random(17))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        delays = [policy.wait(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: the draws cover the whole range, the lower half included (no fixed floor).
        assert min(delays) < ceiling / 4 and max(delays) > ceiling * 3 / 4
    assert policy.wait(0, retry_after=3.0) >= 3.0
    assert policy.wait(0, retry_after=600.0) == 4.0  # a Retry-After is honoured up to the cap
    assert RetryPolicy(backoff_seconds=0).wait(2, retry_after=3.0) == 0.0  # waiting off (tests, sandbox)
    same = RetryPolicy(rng=random.Random(5)), RetryPolicy(rng=random.Random(5))
    assert [same[0].wait(n) for n in range(4)] == [same[1].wait(n) for n in range(4)]  # seeded: reproducible


def test_which_errors_the_policy_retries() -> None:
    policy = RetryPolicy(retries=5)
    transient = errors.TransientError("x")
    assert policy.should_retry(0, transient, safe=True)
    assert not policy.should_retry(0, transient, safe=False)  # sent, unanswered: the write may have happened
    assert not policy.should_retry(5, transient, safe=True)
    assert not policy.should_retry(0, errors.InvalidParameterError("x"), safe=True)
    unsent = errors.TransientError("refused")
    unsent.sent = False
    assert policy.should_retry(0, unsent, safe=False)  # never left: safe for a write too
    unsent.exhausted = True
    assert not policy.should_retry(0, unsent, safe=True)


def test_retry_after_is_parsed_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Sun, 06 Dec 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 06 Dec 2026 11:00:00 GMT", now=now) == 0.0  # already past: go now
    for garbage in (None, "", "-5", "soon", "inf", "nan", "1e999", "Sun, 99 Foo 2026 12:00:30 GMT"):
        assert parse_retry_after(garbage, now=now) is None, garbage


def _in(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@responses.activate
def test_http_date_retry_after_is_honoured(client: MoodleClient, sleeps: list[float]) -> None:
    responses.post(ENDPOINT, status=503, headers={"Retry-After": _in(6)})
    responses.post(ENDPOINT, body=SITE_INFO, content_type="application/json")
    assert client.get_site_info()["userid"] == 2
    assert len(sleeps) == 1 and 4.5 <= sleeps[0] <= 6.0  # the date's second, less the time it took


@responses.activate
@pytest.mark.parametrize("value", ["-5", "soon", "nan", "Sun, 99 Foo 2026 12:00:30 GMT"])
def test_garbage_retry_after_is_ignored(client: MoodleClient, sleeps: list[float], value: str) -> None:
    responses.post(ENDPOINT, status=429, headers={"Retry-After": value})
    responses.post(ENDPOINT, body=SITE_INFO, content_type="application/json")
    assert client.get_site_info()["userid"] == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.01  # the policy's own backoff only


@responses.activate
def test_write_that_never_left_is_retried_one_sent_is_not(client: MoodleClient, sleeps: list[float]) -> None:
    params = {"enrolments": [{"roleid": 5, "userid": 3, "courseid": 2}]}
    responses.post(ENDPOINT, body=requests.ConnectTimeout("connect timed out"))
    responses.post(ENDPOINT, body="null", content_type="application/json")
    assert client.call_with("enrol_manual_enrol_users", params, safe=False) is None
    assert len(responses.calls) == 2 and len(sleeps) == 1
    responses.post(ENDPOINT, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(errors.TransientError) as info:
        client.call_with("enrol_manual_enrol_users", params, safe=False)
    assert info.value.sent and not info.value.exhausted  # left for the caller to check, then resend
    assert len(responses.calls) == 3 and len(sleeps) == 1


@responses.activate
def test_retries_are_bounded_and_the_error_says_so(client: MoodleClient, sleeps: list[float]) -> None:
    responses.post(ENDPOINT, status=503, headers={"Retry-After": "1"})
    with pytest.raises(errors.TransientError) as info:
        client.get_site_info()
    assert info.value.exhausted and info.value.retry_after == 1.0
    assert len(responses.calls) == 4 and len(sleeps) == 3 and all(1.0 <= s <= 8.0 for s in sleeps)


def test_refused_connection_is_retried_by_the_policy_alone() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    sleeps: list[float] = []
    client = MoodleClient.from_url(f"http://127.0.0.1:{port}", TOKEN, retries=2, backoff_seconds=0.01,
                                   sleep=sleeps.append)
    started = time.monotonic()
    with pytest.raises(errors.TransientError) as info:
        client.get_site_info()
    assert info.value.exhausted and not info.value.sent and "cannot connect" in str(info.value)
    # One layer of retries: each try is one request, each wait goes through the injected sleep.
    assert client.transport.requests_made == 3 and len(sleeps) == 2
    assert time.monotonic() - started < 5
