"""HTTP for the registry targets: the only registry module that imports requests. Library errors are
translated to RegistryError leaves here, in one place."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests

from creditbridge.connector.http import never_sent
from creditbridge.connector.registry.errors import (
    RegistryAuthError,
    RegistryConflictError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailableError,
)
from creditbridge.connector.registry.signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from creditbridge.connector.retry import parse_retry_after


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


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
        cls, retry_after = RegistryUnavailableError, parse_retry_after(resp.headers.get("Retry-After"))
    elif resp.status_code in (401, 403):
        cls = RegistryAuthError
    elif resp.status_code in (409, 422):
        cls = RegistryConflictError
    return cls(message, status=resp.status_code, code=code,
               request_id=request_id or resp.headers.get("X-Request-Id"), retry_after=retry_after)


def send(session: requests.Session, method: str, url: str, *, body: Any = None,
         headers: dict[str, str] | None = None, timeout: float | tuple[float, float] | None = None,
         auth: tuple[str, str] | None = None, ok: tuple[int, ...] = (200, 201, 204)) -> Answer:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    return send_raw(session, method, url, data=data, headers=hdrs, timeout=timeout, auth=auth, ok=ok)


def send_raw(session: requests.Session, method: str, url: str, *, data: bytes | None, headers: dict[str, str],
             timeout: float | tuple[float, float] | None = None, auth: tuple[str, str] | None = None,
             ok: tuple[int, ...] = (200, 201, 204)) -> Answer:
    """One request; `timeout` None: the session's own (connector.http.make_session). Resending is the caller's
    (outbox, under connector.retry's policy)."""
    try:
        resp = session.request(method, url, data=data, headers=headers, timeout=timeout, auth=auth)
    except (requests.Timeout, requests.ConnectionError) as e:
        what = "timed out" if isinstance(e, requests.Timeout) else "connection failed"
        error = RegistryUnavailableError(f"registry {what} ({type(e).__name__})")
        error.sent = not never_sent(e)
        raise error from e
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
