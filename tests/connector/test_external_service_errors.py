"""Moodle's and the registries' errors share one root, ExternalServiceError (code, status, request id,
retryable, retry_after), raised by the real clients over HTTP (`responses`), and every existing `except`
keeps catching what it caught."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
import responses

from creditbridge import CreditbridgeError
from creditbridge.connector import errors
from creditbridge.connector.moodle import MoodleClient
from creditbridge.connector.registry import transport as registry_transport
from creditbridge.connector.registry.errors import (
    RegistryAuthError,
    RegistryConflictError,
    RegistryError,
    RegistryUnavailableError,
)
from creditbridge.connector.service_errors import ExternalServiceError

MOODLE = "http://moodle.test"
ENDPOINT = MOODLE + "/webservice/rest/server.php"
REGISTRY = "http://registry.test/api/records"
TOKEN = "s3cr3ttoken0123456789abcdef000000"
ID = "11010519491231002X"


def _moodle() -> MoodleClient:
    return MoodleClient.from_url(MOODLE, TOKEN, retries=1, backoff_seconds=0.0, sleep=lambda _s: None)


def _catch(call: Callable[[], object]) -> ExternalServiceError:
    """What one `except ExternalServiceError` around the call receives."""
    try:
        call()
    except ExternalServiceError as e:
        return e
    raise AssertionError("no error raised")


@responses.activate
def test_a_moodle_error_envelope_fills_the_shared_fields() -> None:
    responses.post(ENDPOINT, json={"exception": "invalid_parameter_exception", "errorcode": "invalidparameter",
                                   "message": f"Invalid parameter value detected ({ID} taken)"})
    e = _catch(_moodle().get_site_info)
    assert isinstance(e, errors.InvalidParameterError)
    assert e.code == e.errorcode == "invalidparameter"
    assert e.status == 200 and e.request_id is None and e.retry_after is None
    assert e.retryable is False
    assert ID not in e.message and ID not in str(e) and "(1101*" in e.message  # masked by the shared base
    # what Moodle errors always printed stays as it was
    assert str(e) == f"core_webservice_get_site_info: {e.message} [invalidparameter]"


@responses.activate
def test_moodle_overload_is_retryable_with_the_servers_wait() -> None:
    responses.post(ENDPOINT, status=503, headers={"Retry-After": "7"})
    responses.post(ENDPOINT, status=503, headers={"Retry-After": "7"})
    e = _catch(_moodle().get_site_info)
    assert isinstance(e, errors.TransientError)
    assert e.retryable is True and e.status == 503 and e.retry_after == 7.0 and e.code is None


@responses.activate
def test_registry_overload_fills_the_same_fields() -> None:
    responses.post(REGISTRY, status=503, headers={"Retry-After": "12", "X-Request-Id": "req-77"},
                   json={"error": {"code": "busy", "message": "try later"}})
    e = _catch(lambda: registry_transport.send(requests.Session(), "POST", REGISTRY, body={"records": []}))
    assert isinstance(e, RegistryUnavailableError)
    assert (e.code, e.status, e.request_id, e.retry_after, e.retryable) == ("busy", 503, "req-77", 12.0, True)
    assert str(e) == "try later (status 503, code busy, request req-77)"  # unchanged


@responses.activate
@pytest.mark.parametrize(("status", "cls"), [(409, RegistryConflictError), (403, RegistryAuthError)])
def test_registry_refusals_are_not_retryable_and_masked(status: int, cls: type[RegistryError]) -> None:
    responses.post(REGISTRY, status=status,
                   body=json.dumps({"error": {"code": "refused", "message": f"record {ID} refused"},
                                    "request_id": "req-9"}), content_type="application/json")
    e = _catch(lambda: registry_transport.send(requests.Session(), "POST", REGISTRY, body={}))
    assert type(e) is cls and e.retryable is False
    assert (e.code, e.status, e.request_id) == ("refused", status, "req-9")
    assert ID not in e.message and ID not in str(e)


def test_one_root_and_the_old_roots_unchanged() -> None:
    assert issubclass(errors.MoodleError, ExternalServiceError)
    assert issubclass(RegistryError, ExternalServiceError)
    assert issubclass(ExternalServiceError, CreditbridgeError)
    # The existing `except MoodleError` / `except RegistryError` sites catch exactly what they caught.
    assert not issubclass(RegistryError, errors.MoodleError)
    assert not issubclass(errors.MoodleError, RegistryError)
    # retryable is per class, as before: only the overload leaves say yes
    retryable = {c.__name__ for c in (*errors.ERRORCODE_CLASSES.values(), errors.TransientError,
                                      errors.ProtocolError, errors.MoodleError, RegistryError,
                                      RegistryUnavailableError, RegistryAuthError, RegistryConflictError)
                 if c.retryable}
    assert retryable == {"TransientError", "RegistryUnavailableError"}


def test_errors_built_directly_keep_their_fields() -> None:
    e = errors.error_for("invalidtoken", f"token of {ID}", function="f", status=200)
    assert type(e) is errors.InvalidTokenError and e.code == "invalidtoken" and ID not in e.message
    assert e.as_json()["errorcode"] == "invalidtoken" and e.as_json()["retryable"] is False
    r = RegistryUnavailableError("down", status=502, retry_after=3.0)
    assert (r.status, r.code, r.request_id, r.retry_after) == (502, None, None, 3.0)
