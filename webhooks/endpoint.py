"""POST /webhooks/moodle: size limit, signature on the raw bytes, then the body (UTF-8, JSON, schema; see
payload.parse_payload), then one durable, deduping insert.

Order matters (as in PyPI's warehouse): nothing is parsed before the signature is checked, and the 2xx goes out
only after the inbox row is committed, so an acknowledged delivery survives any crash. The insert is grouped:
the deliveries that reach one worker together share one INSERT and one commit (webhooks/inbox_writer.py), each
still answered only after the commit that holds its row.

A plain WSGI app, mounted into the Flask receiver at its path by create_app (werkzeug's DispatcherMiddleware,
Flask's "application dispatching" pattern), because this is the one hot path: Flask's request context, request
and response objects cost more CPU per delivery than everything this endpoint does itself (BENCHMARKS.md). It
reads only what it needs from the WSGI environ: the length, the body and the three signed headers.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from flask import Flask
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length

from creditbridge.webhooks import resources
from creditbridge.webhooks.body_reader import BodyReadTimeout, read_body
from creditbridge.webhooks.inbox_writer import InboxWriteError
from creditbridge.webhooks.payload import PayloadRefused, parse_payload
from creditbridge.webhooks.processing import process_pending

log = logging.getLogger(__name__)

PATH = "/webhooks/moodle"
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_ENVIRON_KEYS = tuple((h, "HTTP_" + h.upper().replace("-", "_")) for h in SIGNED_HEADERS)
# What the inbox can hold (webhook_delivery.webhook_id is 100 characters) and what can be logged and shown back
# safely: the plugin's ids are "msg_" and 40 hex digits.
_WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,100}")
# Status of each answer to the sender, by reason: 503 only when the receiver cannot take deliveries at all
# (misconfigured or its database unreachable), so the sender retries later; every bad input is a 4xx (the plugin
# logs a 4xx and does not retry it: the same body would fail again). Signature problems not listed are 401.
_STATUS = {"too_large": 413, "missing_headers": 400, "bad_webhook_id": 400, "no_secret_configured": 503,
           "bad_content_type": 415, "bad_encoding": 400, "bad_json": 400, "bad_number": 400,
           "nul_character": 400, "bad_payload": 422, "store_error": 503, "not_found": 404,
           "method_not_allowed": 405,
           "read_timeout": 408}  # a slow sender: the body did not arrive within webhooks.read_timeout_seconds
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}

StartResponse = Callable[..., Any]


class DeliveryEndpoint:
    """The WSGI app answering POST /webhooks/moodle for one Flask receiver app."""

    def __init__(self, app: Flask, verifiers: list[Webhook]) -> None:
        self.app = app
        self.verifiers = verifiers  # built once per app, not per request

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", ""):  # mounted at the path itself: nothing below it is ours
            return _answer(start_response, *self._reject("not_found", "no such path"))
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, *self._reject("method_not_allowed", "deliveries are POSTed"),
                           [("Allow", "POST")])
        status, doc = self.receive(environ)
        return _answer(start_response, status, doc)

    def receive(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        app = self.app
        webhooks = resources.settings(app).webhooks
        limit = webhooks.max_body_bytes
        length = get_content_length(environ)
        if length is not None and length > limit:
            return self._reject("too_large", f"body over {limit} bytes")
        try:
            body = read_body(environ, limit, webhooks.read_timeout_seconds)
        except BodyReadTimeout:
            return self._reject("read_timeout", f"body not received within {webhooks.read_timeout_seconds:g} s")
        if len(body) > limit:
            return self._reject("too_large", f"body over {limit} bytes")
        headers = {h: environ.get(key, "") for h, key in _ENVIRON_KEYS}
        problem = self._verify(body, headers)
        if problem:
            return self._reject(problem, problem.replace("_", " "))
        wid = headers["webhook-id"]
        if not _WEBHOOK_ID.fullmatch(wid):
            return self._reject("bad_webhook_id", "webhook-id must be 1 to 100 printable ASCII characters")
        media, options = parse_options_header(environ.get("CONTENT_TYPE", ""))
        if media != "application/json" or options.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            return self._reject("bad_content_type", "Content-Type must be application/json (UTF-8)")
        try:
            # Signed, so now the body is read: strict UTF-8, JSON, finite numbers, no NUL, the schema.
            text, payload = parse_payload(body)
        except PayloadRefused as e:
            return self._reject(e.reason, str(e))
        try:
            # The body as signed, not a re-serialisation: what the inbox keeps is what the sender vouched for.
            stored = resources.writer(app).store_delivery(wid, payload.event.value, text)
        except InboxWriteError:
            # Not acknowledged, so the sender retries; the writer has logged why (without the payload).
            resources.count(app, "store_error")
            return _STATUS["store_error"], {"ok": False, "reason": "store_error",
                                            "detail": "the delivery could not be stored"}
        if not stored:
            # The unique webhook_id refused it: a retry of a delivery already stored. 2xx, no effect.
            resources.count(app, "duplicate")
            return 200, {"ok": True, "duplicate": True, "webhook_id": wid}
        resources.count(app, "accepted")
        if app.config.get("WEBHOOKS_PROCESS_INLINE", webhooks.process_inline):
            if app.config.get("WEBHOOKS_INLINE_MODE", webhooks.inline_mode) == "background":
                resources.background(app).submit(wid)
            else:
                self._process_now(wid)
        return 202, {"ok": True, "duplicate": False, "webhook_id": wid}

    def _verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None if some configured secret signed this body; otherwise the reason code."""
        if not all(headers.values()):
            return "missing_headers"
        if not self.verifiers:
            return "no_secret_configured"
        reason = "bad_signature"
        for wh in self.verifiers:
            try:
                wh.verify(body, headers, json_parse=False)
                return None
            except WebhookVerificationError as e:
                text = str(e)
                if "too old" in text:
                    return "timestamp_too_old"
                if "too new" in text:
                    return "timestamp_too_new"
                if "Invalid Signature Headers" in text:
                    return "bad_timestamp"
            except (ValueError, binascii.Error, UnicodeDecodeError):
                # a malformed signature list: the library raises plain errors (it verifies the body byte for byte)
                reason = "bad_signature"
        return reason

    def _reject(self, reason: str, detail: str) -> tuple[int, dict[str, Any]]:
        # Counted in memory, flushed to the store periodically (webhooks/counters.py): no database write here.
        resources.count(self.app, reason)
        return _STATUS.get(reason, 401), {"ok": False, "reason": reason, "detail": detail}

    def _process_now(self, wid: str) -> None:
        # After the commit: a failure here leaves the delivery pending for the next process_pending run.
        try:
            process_pending(resources.settings(self.app), resources.store(self.app), webhook_ids=[wid])
        except Exception:
            log.exception("inline processing of %s failed; it stays pending", wid)


def _answer(start_response: StartResponse, status: int, doc: dict[str, Any],
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = orjson.dumps(doc)
    start_response(_STATUS_LINES[status], [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body))), *(extra or [])])
    return [body]
