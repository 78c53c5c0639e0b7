"""The retry policy's wait stays a number of seconds within its cap whatever the attempt count (hostile review
of #17): `registry.retries` has no upper bound, and `backoff_seconds * 2 ** attempt` raised OverflowError from
the 1,024th resend on, so a push against a registry down for long enough crashed with a traceback instead of
waiting its capped minute and giving up for now."""

from __future__ import annotations

import random

import pytest

from creditbridge.connector.retry import RetryPolicy


@pytest.mark.parametrize("attempt", [0, 10, 1_023, 1_024, 5_000, 10**6])
def test_the_wait_is_capped_for_any_attempt(attempt: int) -> None:
    policy = RetryPolicy(retries=10**6, backoff_seconds=0.5, max_backoff_seconds=60.0, rng=random.Random(7))
    assert 0.0 <= policy.wait(attempt) <= 60.0
    assert policy.wait(attempt, retry_after=10**9) == 60.0  # a server's wish is capped too
