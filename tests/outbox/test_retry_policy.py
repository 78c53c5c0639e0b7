"""push() resends under the one retry policy (connector/retry.py), driven against a REST registry mocked with
`responses`: Retry-After as an HTTP-date or seconds, garbage ignored, fatal answers never resent, resends
bounded, and every resend of a batch under the same idempotency keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses
from registry_helpers import SECRET, add_teachers, id_number, put_results

from creditbridge.connector.registry import RegistryConflictError
from creditbridge.outbox.service import push
from creditbridge.settings import load_settings
from creditbridge.store import Store

URL = "http://registry.test"
BATCH = URL + "/api/v1/credit-records:batch"


def _settings(store: Store, **registry: Any) -> Any:
    reg = {"target": "rest", "url": URL, "secret": SECRET, "timeout_seconds": 5.0, "backoff_seconds": 0.01,
           "retries": 3, **registry}
    return load_settings(None, env={}, overrides={"database": {"url": store.url}, "registry": reg})


def _acknowledge(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    keys = [r["key"] for r in json.loads(request.body or b"{}")["records"]]
    results = [{"key": k, "status": "acknowledged", "registry_id": f"r-{n}"} for n, k in enumerate(keys)]
    return 200, {}, json.dumps({"results": results})


def _sent_keys(call: Any) -> tuple[str, list[str]]:
    return call.request.headers["Idempotency-Key"], [r["key"] for r in json.loads(call.request.body)["records"]]


def _one_result(store: Store) -> None:
    add_teachers(store, [1, 2])
    put_results(store, [{"teacher": id_number(1)}, {"teacher": id_number(2)}])


@responses.activate
def test_http_date_retry_after_is_honoured_and_the_resend_keeps_its_keys(store: Store) -> None:
    _one_result(store)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    responses.post(BATCH, status=503, headers={"Retry-After": when}, json={"error": {"code": "busy"}})
    responses.add_callback(responses.POST, BATCH, callback=_acknowledge)
    waits: list[float] = []
    result = push(_settings(store), store, sleep=waits.append)
    assert (result.acknowledged, result.pending, result.gave_up) == (2, 0, False)
    assert len(waits) == 1 and 18.5 <= waits[0] <= 20.0  # the date, not the 0.01 s backoff
    first, resend = (_sent_keys(c) for c in responses.calls)
    assert first == resend and len(first[1]) == 2  # one idempotency key per logical write, on every resend


@responses.activate
@pytest.mark.parametrize("value", ["tomorrow", "-30", "Sun, 99 Foo 2026 12:00:30 GMT"])
def test_garbage_retry_after_is_ignored(store: Store, value: str) -> None:
    _one_result(store)
    responses.post(BATCH, status=429, headers={"Retry-After": value})
    responses.add_callback(responses.POST, BATCH, callback=_acknowledge)
    waits: list[float] = []
    assert push(_settings(store), store, sleep=waits.append).acknowledged == 2
    assert len(waits) == 1 and 0 <= waits[0] <= 0.01


@responses.activate
def test_a_refused_batch_is_not_resent(store: Store) -> None:
    _one_result(store)
    responses.post(BATCH, status=409, json={"error": {"code": "idempotency_conflict", "message": "changed"}})
    with pytest.raises(RegistryConflictError):
        push(_settings(store), store, sleep=lambda _s: pytest.fail("slept before a fatal error"))
    assert len(responses.calls) == 1


@responses.activate
def test_resends_are_bounded_and_capped(store: Store) -> None:
    _one_result(store)
    responses.post(BATCH, status=503, headers={"Retry-After": "3600"})
    waits: list[float] = []
    result = push(_settings(store, retries=2), store, sleep=waits.append)
    assert len(responses.calls) == 3 and result.gave_up is True and result.pending == 2
    assert waits == [60.0, 60.0]  # an hour asked, the outbox's cap given
    assert len({_sent_keys(c)[0] for c in responses.calls}) == 1
