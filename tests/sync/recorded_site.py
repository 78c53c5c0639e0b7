"""A sandbox that answers some functions the way the recorded real site did (shared/fixtures/moodle-ws).

The sandbox is kinder than a real Moodle (its capability model is being built elsewhere); these tests need
the real site's manners now. `RecordedSite` intercepts the client's HTTP with `responses`: a function listed
in `overrides` gets the override's answer (which may first let the sandbox do the work, then answer as the
real site did), every other call goes on to the sandbox over real HTTP (urllib, which `responses` does not
patch). `calls` lists every function called, in order.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import responses

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connector"))
from moodle_ws_fixtures import ws_calls

# override(fields, forward) -> body text; forward() sends the call to the sandbox and returns its body.
Override = Callable[[dict[str, str], Callable[[], str]], str]


def recorded(group: str, index: int) -> dict[str, Any]:
    """Entry `index` of the recorded file `group` (e.g. roles.json entry 5)."""
    for key, entry in ws_calls():
        if key == f"{group}[{index}]":
            return entry
    raise LookupError(f"no recorded ws_call {group}[{index}]")


class RecordedSite:
    def __init__(self, sandbox_url: str, overrides: dict[str, Override]) -> None:
        self.url = sandbox_url.rstrip("/")
        self.overrides = overrides
        self.calls: list[str] = []

    def _forward(self, body: bytes, content_type: str) -> str:
        req = urllib.request.Request(f"{self.url}/webservice/rest/server.php", data=body,  # noqa: S310 - loopback
                                     headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310 - the test's own sandbox
            return answer.read().decode("utf-8")

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        function = fields.get("wsfunction", "")
        self.calls.append(function)
        content_type = request.headers.get("Content-Type", "application/x-www-form-urlencoded")
        forward = lambda: self._forward(body, content_type)  # noqa: E731
        override = self.overrides.get(function)
        text = override(fields, forward) if override else forward()
        return 200, {"Content-Type": "application/json"}, text


@contextmanager
def recorded_site(sandbox_url: str, overrides: dict[str, Override]) -> Iterator[RecordedSite]:
    site = RecordedSite(sandbox_url, overrides)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, re.compile(re.escape(site.url) + r"/.*"), callback=site)
        yield site


def without_email(body: str) -> str:
    """A get_users_by_field answer as a token user without moodle/site:viewuseridentity gets it (roles.json[3])."""
    users = json.loads(body)
    for u in users:
        u.pop("email", None)
    return json.dumps(users)


def item_ids(fields: dict[str, str], key: str) -> list[str]:
    """The `id` of every item of a bulk call's form fields (`courses[3][id]`), in order."""
    pattern = re.compile(rf"^{key}\[(\d+)\]\[id\]$")
    found = sorted((int(m.group(1)), v) for k, v in fields.items() if (m := pattern.match(k)))
    return [v for _, v in found]
