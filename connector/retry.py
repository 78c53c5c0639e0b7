"""The one retry policy of the outside services (Moodle and the credit registries), on tenacity.

What is retried: only an ExternalServiceError whose `retryable` is true, and of those only what is safe to
send again: a call the caller declares `safe` (a read, a write made idempotent: the registry's batches carry
their idempotency key, the same on every resend), or a request that never left this machine (`sent` false:
the connection was refused or timed out before anything was written). A write that went out and got no
answer is left to its caller, which checks what was applied before it sends again (connector.moodle).

How long between tries: exponential from `backoff_seconds`, capped at `max_backoff_seconds`, with full
jitter (a uniform draw between 0 and that step, AWS's "Exponential Backoff And Jitter"), so clients that
failed together do not come back together; never sooner than the service's Retry-After (capped too).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from creditbridge.connector.service_errors import ExternalServiceError

log = logging.getLogger(__name__)
T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (RFC 9110 §10.2.3: delta-seconds or an HTTP-date).

    None for no header or one that cannot be meant (negative, not a number, not finite, not a date); a date
    already past is 0. Callers cap the figure: a server's wish is not a reason to stall for an hour."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses to a naive datetime
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` resends at most after the first try; `backoff_seconds` 0 turns every wait off (tests, the
    sandbox), Retry-After included. `rng` is the jitter's source: seed one for a reproducible schedule."""

    retries: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def may_retry(self, error: BaseException, *, safe: bool) -> bool:
        """Whether sending again can help and can do no harm (attempts aside)."""
        return (isinstance(error, ExternalServiceError) and error.retryable and not error.exhausted
                and (safe or not error.sent))

    def should_retry(self, attempt: int, error: BaseException, *, safe: bool) -> bool:
        """`attempt` counts from 0: the number of resends already made."""
        return attempt < self.retries and self.may_retry(error, safe=safe)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before resend number `attempt` + 1."""
        if self.backoff_seconds <= 0:
            return 0.0
        # Past about 1,000 doublings 2 ** attempt is no float (OverflowError); any cap is reached long before.
        step = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** min(attempt, 1_000))
        delay = self.rng.uniform(0, step)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_seconds))
        return delay

    def call(self, fn: Callable[[], T], *, safe: bool, sleep: Callable[[float], None], what: str) -> T:
        """`fn()`, sent again under this policy. An error that still stands after the last resend is raised
        with `exhausted` set, so no caller above retries it again."""

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = error.retry_after if isinstance(error, ExternalServiceError) else None
            return self.wait(state.attempt_number - 1, retry_after)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            # A request that never left (refused connection) is routine noise until the retries run out.
            level = logging.WARNING if getattr(error, "sent", True) else logging.INFO
            log.log(level, "%s: %s; retry %d/%d in %.2fs", what, getattr(error, "message", error), state.attempt_number,
                    self.retries, delay)

        retrying = Retrying(stop=stop_after_attempt(self.retries + 1), wait=wait, sleep=sleep, reraise=True,
                            retry=retry_if_exception(lambda e: self.may_retry(e, safe=safe)),
                            before_sleep=before_sleep)
        try:
            return retrying(fn)
        except ExternalServiceError as error:
            if self.may_retry(error, safe=safe):
                error.exhausted = True  # retried as far as the policy allows
            raise
