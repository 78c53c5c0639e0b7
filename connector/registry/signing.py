"""HMAC-SHA256 request signing of the provincial REST API (docs/registry-api.md), shared by the
client (connector/registry/rest.py) and the simulator (registry_sim/) so both read one definition."""

from __future__ import annotations

import hashlib
import hmac

KEY_ID_HEADER = "X-Registry-Key-Id"
TIMESTAMP_HEADER = "X-Registry-Timestamp"
SIGNATURE_HEADER = "X-Registry-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def string_to_sign(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    # The body is hashed rather than inlined so the signed string stays small and unambiguous.
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def sign(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), string_to_sign(method, path, timestamp, body), hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, method: str, path: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, method, path, timestamp, body), signature or "")
