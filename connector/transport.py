"""HTTP for the Moodle client: the only Moodle module that imports requests.

`Transport.post` retries a call under the one RetryPolicy (connector/retry.py): timeouts, 5xx and 429 only when
the caller says the call is safe to repeat (reads, or writes the caller has made idempotent by checking first);
a request that never reached Moodle (the connection failed) for every function.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests

from creditbridge.connector.errors import MoodleError, ProtocolError, TransientError
from creditbridge.connector.http import make_session, never_sent
from creditbridge.connector.parsing import parse_response
from creditbridge.connector.retry import RetryPolicy, parse_retry_after
from creditbridge.redact import mask_url

log = logging.getLogger(__name__)

ENDPOINT = "/webservice/rest/server.php"
REDACTED = "***"
# What Transport reports to the Limiter for a call Moodle took in but did not answer within the read timeout.
TIMED_OUT = 0


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
        self.session = make_session(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                    headers={"Accept": "application/json, application/xml;q=0.9"})

    def __repr__(self) -> str:
        return f"Transport({self.shown_endpoint!r}, fmt={self.fmt!r})"

    def close(self) -> None:
        self.session.close()

    def post(self, function: str, fields: Sequence[tuple[str, str]], *, safe: bool) -> Any:
        """Call `function`; retried on transient failures only when `safe`."""
        return self.policy.call(lambda: self._post_once(function, fields), safe=safe, sleep=self.sleep,
                                what=function)

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
            response = self.session.post(self.endpoint, data=body, allow_redirects=False)
        except requests.Timeout as e:
            if report is not None and not isinstance(e, requests.ConnectTimeout):
                report(TIMED_OUT, None)  # sent and not answered: the limiter backs off as for a 503
            error = TransientError(f"timed out after {self._describe_timeout(e)}", function=function)
            error.sent = not never_sent(e)
            raise error from e
        except requests.ConnectionError as e:
            error = TransientError(f"cannot connect to {self.shown_endpoint}: {self._scrub(type(e).__name__)}",
                                   function=function)
            error.sent = not never_sent(e)
            raise error from e
        except requests.RequestException as e:
            raise ProtocolError(f"request failed: {self._scrub(str(e))}", function=function) from e
        elapsed_ms = (time.monotonic() - started) * 1000
        if report is not None:
            report(response.status_code, parse_retry_after(response.headers.get("Retry-After")))
        log.debug("%s -> HTTP %d in %.0f ms (%d bytes)", function, response.status_code, elapsed_ms,
                  len(response.content))
        return self._answer(function, response)

    def _answer(self, function: str, response: requests.Response) -> Any:
        status = response.status_code
        if status >= 500 or status == 429:
            error = TransientError(f"HTTP {status} from Moodle", function=function, status=status)
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
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

