"""xAPI target: each credit record becomes a statement in a Learning Record Store (e.g. Ralph).

Statement ids are UUIDv5 of the submission's idempotency key, and the statement's content is a pure
function of the submission (its timestamp is the evaluation time, not the send time), so a resend is a
no-op for a conformant LRS: it drops an identical statement it already holds (xAPI 1.0.3 §2.1.2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from creditbridge.connector.http import make_session
from creditbridge.connector.registry import transport
from creditbridge.connector.registry.base import Outcome, RegistryTarget, Submission
from creditbridge.connector.registry.errors import RegistryConfigError, RegistryError
from creditbridge.settings.model import RegistrySettings

STATEMENT_NS = uuid.UUID("0b7e6f64-3f0c-5a54-9d3b-6c1f3c2f9a10")
XAPI_VERSION = "1.0.3"
ID_HOMEPAGE = "https://id.creditbridge.invalid/resident-id"
ACTIVITY_BASE = "https://creditbridge.invalid/programmes"
EXT = "https://creditbridge.invalid/xapi/extensions"
VERBS = {
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
    "void": "http://adlnet.gov/expapi/verbs/voided",
}


def statement_id(key: str) -> str:
    return str(uuid.uuid5(STATEMENT_NS, key))


def to_statement(s: Submission) -> dict[str, Any]:
    r = s.record
    actor = {"objectType": "Agent", "name": r.get("name") or "",
             "account": {"homePage": ID_HOMEPAGE, "name": r["id_number"]}}
    timestamp = r.get("evaluated_at") or f"{r.get('end_date') or str(r['year']) + '-12-31'}T00:00:00+00:00"
    if s.action == "void":
        if not s.supersedes:
            raise RegistryConfigError("a void submission needs the key of the record it voids")
        return {"id": statement_id(s.key), "actor": actor,
                "verb": {"id": VERBS["void"], "display": {"en-US": "voided"}},
                "object": {"objectType": "StatementRef", "id": statement_id(s.supersedes)},
                "timestamp": timestamp, "version": XAPI_VERSION}
    activity = f"{ACTIVITY_BASE}/{r['programme_code']}/{r['year']}"
    extensions = {f"{EXT}/{name}": r.get(name) for name in
                  ("hours", "credits", "year", "version", "role", "school_code", "level", "mode", "provider")}
    if s.supersedes:
        extensions[f"{EXT}/supersedes"] = statement_id(s.supersedes)
    result: dict[str, Any] = {"success": r["result"] == "passed", "completion": True,
                              "extensions": {f"{EXT}/hours": float(r["hours"]), f"{EXT}/credits": float(r["credits"])}}
    if r.get("score") is not None:
        result["score"] = {"raw": float(r["score"])}
    return {
        "id": statement_id(s.key), "actor": actor,
        "verb": {"id": VERBS[r["result"]], "display": {"en-US": r["result"]}},
        "object": {"objectType": "Activity", "id": activity,
                   "definition": {"name": {"zh-CN": r.get("programme_name") or r["programme_code"]},
                                  "type": "http://adlnet.gov/expapi/activities/course"}},
        "result": result,
        "context": {"extensions": {k: v for k, v in extensions.items() if v is not None}},
        "timestamp": timestamp, "version": XAPI_VERSION,
    }


class XapiTarget(RegistryTarget):
    max_batch = 500

    def __init__(self, settings: RegistrySettings) -> None:
        super().__init__(settings)
        if not settings.url.startswith(("http://", "https://")):
            raise RegistryConfigError(f"registry.url must be the LRS base URL, got {settings.url!r}")
        self._url = settings.url.rstrip("/") + "/xAPI/statements"
        self._auth = (settings.lrs_username, settings.lrs_password.get_secret_value())
        self._session = make_session(connect_timeout=min(5.0, settings.timeout_seconds),
                                     read_timeout=settings.timeout_seconds)
        self._headers = {"X-Experience-API-Version": XAPI_VERSION}

    def _post(self, statements: list[dict[str, Any]]) -> None:
        transport.send(self._session, "POST", self._url, body=statements, headers=self._headers,
                       auth=self._auth, ok=(200, 204))

    def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        statements = [to_statement(s) for s in batch]
        try:
            self._post(statements)
            return [Outcome(s.key, "acknowledged", registry_id=st["id"])
                    for s, st in zip(batch, statements, strict=True)]
        except RegistryError as e:
            if e.retryable or e.status not in (400, 409):
                raise
        # The LRS refuses a whole batch for one bad statement: find which, one at a time.
        outcomes = []
        for s, st in zip(batch, statements, strict=True):
            try:
                self._post([st])
                outcomes.append(Outcome(s.key, "acknowledged", registry_id=st["id"]))
            except RegistryError as e:
                if e.retryable:
                    outcomes.append(Outcome(s.key, "transient", reason=str(e)))
                elif e.status in (400, 409):
                    outcomes.append(Outcome(s.key, "rejected", reason=f"LRS: {e.message}"[:500]))
                else:
                    raise
        return outcomes

    def close(self) -> None:
        self._session.close()
