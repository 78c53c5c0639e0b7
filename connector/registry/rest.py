"""The provincial REST JSON registry (the API registry-sim documents): signed, idempotent batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from creditbridge.connector.http import make_session
from creditbridge.connector.registry import transport
from creditbridge.connector.registry.base import Outcome, RegistryTarget, Submission
from creditbridge.connector.registry.errors import RegistryConfigError, RegistryProtocolError
from creditbridge.connector.registry.signing import IDEMPOTENCY_HEADER
from creditbridge.settings.model import RegistrySettings

BATCH_PATH = "/api/v1/credit-records:batch"
# Batch keys are derived from the submissions' own keys, so a resent batch (same submissions) carries
# the same Idempotency-Key without anything to remember between attempts or across a crash.
_BATCH_NS = uuid.UUID("6f1c3b0e-2a55-4f7e-9f43-8d1c0b7a5e21")


def batch_key(batch: Sequence[Submission]) -> str:
    return str(uuid.uuid5(_BATCH_NS, "|".join(sorted(s.key for s in batch))))


class RestTarget(RegistryTarget):
    max_batch = 1000

    def __init__(self, settings: RegistrySettings) -> None:
        super().__init__(settings)
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryConfigError(f"registry.url must be an http(s) URL, got {settings.url!r}")
        secret = settings.secret.get_secret_value()
        if not secret:
            raise RegistryConfigError("registry.secret is empty (set CREDITBRIDGE_REGISTRY_SECRET)")
        self._secret = secret
        self._base = settings.url.rstrip("/")
        self._path = parts.path.rstrip("/") + BATCH_PATH
        self._session = make_session(connect_timeout=min(5.0, settings.timeout_seconds),
                                     read_timeout=settings.timeout_seconds)

    def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        body = {"records": [{"key": s.key, "action": s.action, "supersedes": s.supersedes, "record": s.record}
                            for s in batch]}
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   IDEMPOTENCY_HEADER: batch_key(batch),
                   **transport.signed_headers(self.settings.key_id, self._secret, "POST", self._path, data)}
        answer = transport.send_raw(self._session, "POST", self._base + BATCH_PATH, data=data, headers=headers)
        try:
            results = answer.body["results"]
            outcomes = [Outcome(key=r["key"], status=r["status"], reason=r.get("reason"),
                                registry_id=r.get("registry_id")) for r in results]
        except (TypeError, KeyError) as e:
            raise RegistryProtocolError("registry answer has no per-record results", status=answer.status) from e
        sent = {s.key for s in batch}
        got = {o.key for o in outcomes}
        # Anything the registry did not answer about stays undecided and is sent again later.
        outcomes += [Outcome(key=k, status="transient", reason="no answer for this record") for k in sent - got]
        return [o for o in outcomes if o.key in sent]

    def close(self) -> None:
        self._session.close()
