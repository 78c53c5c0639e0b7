"""HTTP for the Moodle client: the only module that imports requests/urllib3.

Two layers of retry, each where it is safe:
- urllib3 `Retry` on the adapter retries only failures to *connect* (the request never reached
  Moodle), for every function;
- `Transport.post` retries whole calls after timeouts, 5xx and 429 only when the caller says the
  call is safe to repeat (reads, or writes the caller has made idempotent by checking first).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from creditbridge import __version__
from creditbridge.connector.errors import MoodleError, ProtocolError, TransientError
from creditbridge.connector.parsing import parse_response
from creditbridge.redact import mask_url

log = logging.getLogger(__name__)

ENDPOINT = "/webservice/rest/server.php"
REDACTED = "***"
# What Transport reports to the Limiter for a call Moodle took in but did not answer within the read timeout.
TIMED_OUT = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with full jitter, capped, honouring Retry-After (stripe-python's shape)."""

    retries: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0

    def should_retry(self, attempt: int, error: MoodleError, *, safe: bool) -> bool:
        """`attempt` counts from 0. Only transient failures of calls that are safe to repeat."""
        if isinstance(error, TransientError) and error.exhausted:
            return False
        return safe and error.retryable and attempt < self.retries

    def sleep_time(self, attempt: int, retry_after: float | None = None) -> float:
        if self.backoff_seconds <= 0:
            return 0.0
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * (2 ** attempt))
        # Half fixed, half random: spreads out clients that failed together without ever waiting 0.
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_seconds))
        return delay


class Limiter:
    """How many calls the transports of one job keep in flight at once, shared by their threads.

    Additive increase, multiplicative decrease (TCP's congestion control, as HTTP clients such as aiohttp-retry
    and the AWS SDKs' adaptive mode do): an overloaded answer (HTTP 429/503) or a call far slower than the fastest
    of its kind halves the number in flight, at most once per round of calls sent after the last cut; every
    `limit` good answers in a row raise it by one, up to `ceiling`. A Retry-After pauses every thread, not just
    the one that was told. Retrying a refused call stays Transport.post's job.
    """

    # "Rising latency": a call SLOW_FACTOR times slower than the fastest one of the same function and about the
    # same size (form fields within a factor of two: a batch halved to isolate a bad record is no yardstick for a
    # full one), and slower than SLOW_FLOOR seconds (a fast site's jitter is not a signal).
    SLOW_FACTOR = 3.0
    SLOW_FLOOR = 1.0

    def __init__(self, ceiling: int, *, max_pause: float = 8.0, clock: Callable[[], float] = time.monotonic) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling = self.limit = ceiling
        self.max_pause = max_pause
        self.clock = clock
        self.in_flight = 0
        self.lowest = ceiling  # the lowest limit of the job: tests and logs tell whether it backed off
        self._cond = threading.Condition()
        self._paused_until = 0.0
        self._good = 0
        self._last_cut = float("-inf")
        self._fastest: dict[tuple[str, int], float] = {}

    @contextmanager
    def slot(self, function: str, size: int = 0) -> Iterator[Callable[[int | None, float | None], None]]:
        """Wait for room, then hold one place while the call runs (`size`: its form fields); report its HTTP
        status (None: no answer; TIMED_OUT: sent, but not answered within the read timeout) and Retry-After."""
        with self._cond:
            while True:
                wait = self._paused_until - self.clock()
                if wait <= 0 and self.in_flight < self.limit:
                    break
                self._cond.wait(timeout=wait if wait > 0 else None)
            self.in_flight += 1
        started = self.clock()
        outcome: list[tuple[int | None, float | None]] = []
        try:
            yield lambda status, retry_after: outcome.append((status, retry_after))
        finally:
            status, retry_after = outcome[-1] if outcome else (None, None)
            self._done((function, size.bit_length()), started, status, retry_after)

    def _done(self, kind: tuple[str, int], started: float, status: int | None, retry_after: float | None) -> None:
        now = self.clock()
        took = now - started
        with self._cond:
            self.in_flight -= 1
            # A read timeout is the strongest sign of an overloaded site (every PHP worker busy): no answer at all.
            overloaded = status in (429, 503, TIMED_OUT)
            if status == 200:
                fastest = self._fastest.setdefault(kind, took)
                self._fastest[kind] = min(fastest, took)
                overloaded = took > self.SLOW_FLOOR and took > self.SLOW_FACTOR * fastest
            if overloaded:
                self._good = 0
                if started > self._last_cut:  # calls already in flight at the last cut say nothing new
                    self._last_cut = now
                    self.limit = max(1, self.limit // 2)
                    self.lowest = min(self.lowest, self.limit)
                    why = (f"{took:.1f}s" if status == 200 else f"no answer in {took:.1f}s" if status == TIMED_OUT
                           else f"HTTP {status}")
                    log.warning("%s: Moodle is overloaded (%s); %d call(s) at a time from now", kind[0], why,
                                self.limit)
                if retry_after:
                    self._paused_until = max(self._paused_until, now + min(retry_after, self.max_pause))
            elif status == 200:
                self._good += 1
                if self._good >= self.limit and self.limit < self.ceiling:
                    self._good = 0
                    self.limit += 1
            self._cond.notify_all()


class Transport:
    """POSTs web-service calls to one Moodle site with its own `requests.Session`."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        fmt: str = "json",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: Limiter | None = None,
    ) -> None:
        if fmt not in ("json", "xml"):
            raise ValueError("format must be 'json' or 'xml'")
        self.endpoint = url.rstrip("/") + ENDPOINT
        # What messages show: a URL may carry HTTP basic credentials (http://user:pw@host), never printed.
        self.shown_endpoint = mask_url(self.endpoint)
        self.fmt = fmt
        self.timeout = (connect_timeout, read_timeout)
        self.policy = policy or RetryPolicy()
        self.requests_made = 0
        self._token = token
        self.sleep = sleep
        # Shared with the other transports of a concurrent job (sync apply's workers); None: no limit.
        self.limiter = limiter
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"creditbridge/{__version__}"
        self.session.headers["Accept"] = "application/json, application/xml;q=0.9"
        # Connect failures only: the request was never sent, so repeating it is safe for writes too.
        adapter = HTTPAdapter(max_retries=Retry(
            total=self.policy.retries, connect=self.policy.retries, read=0, redirect=0, status=0, other=0,
            backoff_factor=self.policy.backoff_seconds, raise_on_status=False,
        ))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"Transport({self.shown_endpoint!r}, fmt={self.fmt!r})"

    def close(self) -> None:
        self.session.close()

    def post(self, function: str, fields: Sequence[tuple[str, str]], *, safe: bool) -> Any:
        """Call `function`; retried on transient failures only when `safe`."""
        attempt = 0
        while True:
            try:
                return self._post_once(function, fields)
            except MoodleError as error:
                if not self.policy.should_retry(attempt, error, safe=safe):
                    raise
                retry_after = error.retry_after if isinstance(error, TransientError) else None
                delay = self.policy.sleep_time(attempt, retry_after)
                log.warning("%s: %s; retry %d/%d in %.2fs", function, error.message, attempt + 1,
                            self.policy.retries, delay)
                self.sleep(delay)
                attempt += 1

    def _post_once(self, function: str, fields: Sequence[tuple[str, str]]) -> Any:
        if self.limiter is None:
            return self._post_now(function, fields, None)
        with self.limiter.slot(function, len(fields)) as report:
            return self._post_now(function, fields, report)

    def _post_now(self, function: str, fields: Sequence[tuple[str, str]],
                  report: Callable[[int | None, float | None], None] | None) -> Any:
        # The token travels in the POST body only: URLs end up in proxy and server access logs.
        body: list[tuple[str, str]] = [("wstoken", self._token), ("wsfunction", function)]
        if self.fmt == "json":
            body.append(("moodlewsrestformat", "json"))
        body.extend(fields)
        started = time.monotonic()
        self.requests_made += 1
        try:
            response = self.session.post(self.endpoint, data=body, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as e:
            if report is not None and not isinstance(e, requests.ConnectTimeout):
                report(TIMED_OUT, None)  # sent and not answered: the limiter backs off as for a 503
            raise TransientError(f"timed out after {self._describe_timeout(e)}", function=function) from e
        except requests.ConnectionError as e:
            error = TransientError(f"cannot connect to {self.shown_endpoint}: {self._scrub(type(e).__name__)}",
                                   function=function)
            # MaxRetryError: the adapter's connect retries (with backoff) already ran out.
            error.exhausted = bool(e.args) and isinstance(e.args[0], MaxRetryError)
            raise error from e
        except requests.RequestException as e:
            raise ProtocolError(f"request failed: {self._scrub(str(e))}", function=function) from e
        elapsed_ms = (time.monotonic() - started) * 1000
        if report is not None:
            report(response.status_code, _retry_after(response.headers.get("Retry-After")))
        log.debug("%s -> HTTP %d in %.0f ms (%d bytes)", function, response.status_code, elapsed_ms,
                  len(response.content))
        return self._answer(function, response)

    def _answer(self, function: str, response: requests.Response) -> Any:
        status = response.status_code
        if status >= 500 or status == 429:
            error = TransientError(f"HTTP {status} from Moodle", function=function, status=status)
            error.retry_after = _retry_after(response.headers.get("Retry-After"))
            raise error
        if status != 200:
            hint = " (is the URL the Moodle site's root?)" if status in (301, 302, 303, 307, 308, 404) else ""
            raise ProtocolError(f"HTTP {status} from {self.shown_endpoint}{hint}", function=function, status=status)
        try:
            return parse_response(response.text, fmt=self.fmt, function=function, status=status)
        except MoodleError as e:
            # Moodle never echoes the token, but a misconfigured proxy page might: scrub before anyone logs it.
            e.message = self._scrub(e.message)
            if e.debuginfo:
                e.debuginfo = self._scrub(e.debuginfo)
            e.args = (e.message,)
            raise

    def _scrub(self, text: str) -> str:
        # Real tokens are 32 hex characters; a toy token of a letter or two would mangle every message.
        return text.replace(self._token, REDACTED) if len(self._token) >= 8 else text

    def _describe_timeout(self, e: requests.Timeout) -> str:
        if isinstance(e, requests.ConnectTimeout):
            return f"{self.timeout[0]}s connecting to {self.shown_endpoint}"
        return f"{self.timeout[1]}s waiting for {self.shown_endpoint}"


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
