"""HTTP for the registry targets: the only registry module that imports requests. Library errors are
translated to RegistryError leaves here, in one place."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from creditbridge.connector.registry.errors import (
    RegistryAuthError,
    RegistryConflictError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailableError,
)
from creditbridge.connector.registry.signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def make_session(connect_retries: int = 3, backoff: float = 0.2) -> requests.Session:
    # urllib3 retries only failures to connect, where nothing reached the server; a read error or a
    # 5xx after the request went out is the outbox's to retry, under the same idempotency key.
    retry = Retry(total=None, connect=connect_retries, read=0, status=0, other=0, redirect=0,
                  backoff_factor=backoff, raise_on_status=False, respect_retry_after_header=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough that the outbox's own backoff serves


def _error_from(resp: requests.Response) -> RegistryError:
    code = message = request_id = None
    try:
        body = resp.json()
        err = body.get("error")
        if isinstance(err, dict):
            code, message = err.get("code"), err.get("message")
        elif isinstance(err, str):  # {"error": "text"}: Flask-style answers keep the reason in a string
            message = err
        detail = body.get("detail")  # FastAPI-style answers (Ralph LRS)
        if message is None and isinstance(detail, str):
            message = detail
        elif message is None and isinstance(detail, list) and detail and isinstance(detail[-1], dict):
            where = ".".join(str(p) for p in detail[-1].get("loc", []))
            message = f"{where}: {detail[-1].get('msg')}"
        request_id = body.get("request_id")
    except (ValueError, AttributeError):
        pass
    message = message or (resp.reason or "registry error")
    cls: type[RegistryError] = RegistryProtocolError
    retry_after = None
    if resp.status_code in (429, 502, 503, 504) or resp.status_code >= 500:
        cls, retry_after = RegistryUnavailableError, _retry_after(resp)
    elif resp.status_code in (401, 403):
        cls = RegistryAuthError
    elif resp.status_code in (409, 422):
        cls = RegistryConflictError
    return cls(message, status=resp.status_code, code=code,
               request_id=request_id or resp.headers.get("X-Request-Id"), retry_after=retry_after)


def send(session: requests.Session, method: str, url: str, *, body: Any = None,
         headers: dict[str, str] | None = None, timeout: float | tuple[float, float] = 30.0,
         auth: tuple[str, str] | None = None, ok: tuple[int, ...] = (200, 201, 204)) -> Answer:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    return send_raw(session, method, url, data=data, headers=hdrs, timeout=timeout, auth=auth, ok=ok)


def send_raw(session: requests.Session, method: str, url: str, *, data: bytes | None, headers: dict[str, str],
             timeout: float | tuple[float, float], auth: tuple[str, str] | None = None,
             ok: tuple[int, ...] = (200, 201, 204)) -> Answer:
    try:
        resp = session.request(method, url, data=data, headers=headers, timeout=timeout, auth=auth)
    except requests.Timeout as e:
        raise RegistryUnavailableError(f"registry timed out ({type(e).__name__})") from e
    except requests.ConnectionError as e:
        raise RegistryUnavailableError(f"registry connection failed ({type(e).__name__})") from e
    except requests.RequestException as e:
        raise RegistryProtocolError(f"registry request failed ({type(e).__name__})") from e
    if resp.status_code not in ok:
        raise _error_from(resp)
    if not resp.content:
        return Answer(resp.status_code, None, dict(resp.headers))
    try:
        return Answer(resp.status_code, resp.json(), dict(resp.headers))
    except ValueError as e:
        raise RegistryProtocolError("registry answered with a body that is not JSON", status=resp.status_code) from e


def signed_headers(key_id: str, secret: str, method: str, path: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {KEY_ID_HEADER: key_id, TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, method, path, ts, body)}
