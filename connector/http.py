"""The one way creditbridge makes a `requests.Session` for an outside service (Moodle, the registries).

Every request gets a connect and a read timeout, whatever the caller forgets. The adapter retries nothing:
all retrying is connector/retry.py's, where the sleep can be injected and the jitter is the same for every
service. A session is not thread-safe: each client, and each worker thread's client, makes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from creditbridge import __version__

Timeout = tuple[float, float]


class _TimeoutAdapter(HTTPAdapter):
    """Fills in the session's (connect, read) timeout where a call gives none."""

    def __init__(self, timeout: Timeout) -> None:
        # No urllib3 retries, not even for connect failures: RetryPolicy retries those (never_sent()).
        super().__init__(max_retries=Retry(total=0, read=False, redirect=False))
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Mapping[str, str] | None = None,
             ) -> requests.Response:
        return super().send(request, stream=stream, timeout=timeout if timeout is not None else self.timeout,
                            verify=verify, cert=cert, proxies=proxies)


def make_session(*, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None) -> requests.Session:
    """A session whose requests time out after `connect_timeout` seconds connecting and `read_timeout`
    seconds waiting for an answer."""
    session = requests.Session()
    session.headers["User-Agent"] = f"creditbridge/{__version__}"
    session.headers.update(headers or {})
    adapter = _TimeoutAdapter((connect_timeout, read_timeout))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def never_sent(error: requests.RequestException) -> bool:
    """Whether the request failed before any of it reached the server (no connection was made), so that
    sending it again cannot apply anything twice."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0].reason if error.args and isinstance(error.args[0], MaxRetryError) else None
    # NewConnectionError (refused, unreachable, name not resolved) is a ConnectTimeoutError in urllib3 2.
    return isinstance(error, requests.ConnectionError) and isinstance(reason, ConnectTimeoutError)
