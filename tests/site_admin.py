"""Helpers for tests that set a sandbox site up the way an administrator would: through its admin endpoints."""

from __future__ import annotations

from typing import Any

import requests

RECEIVER = "https://creditbridge.example/webhooks/moodle"


def admin(server: Any, endpoint: str, **fields: Any) -> dict[str, Any]:
    r = requests.post(f"{server.url}/sandbox/admin/{endpoint}", data={"wstoken": server.token, **fields}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def ws(server: Any, token: str, function: str, **params: Any) -> Any:
    r = requests.post(f"{server.url}/webservice/rest/server.php",
                      data={"wstoken": token, "wsfunction": function, "moodlewsrestformat": "json", **params},
                      timeout=10)
    assert r.status_code == 200
    return r.json()


def docs_site(server: Any) -> str:
    """A site set up as docs/moodle.md says: the creditbridge role, welcome messages off, the plugin's endpoint
    set. Returns the creditbridge user's token."""
    token = admin(server, "role_user")["token"]
    admin(server, "welcome", sendoption=0, scope="all")
    admin(server, "receiver", url=RECEIVER)
    return token
