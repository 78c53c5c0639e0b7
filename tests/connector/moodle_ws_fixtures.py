"""Loading the recorded Moodle exchanges (shared by the connector tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fixture_paths import fixture

FIXTURES = fixture("moodle-ws")


def ws_calls() -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, entry) for every recorded HTTP exchange, in recording order."""
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for index, entry in enumerate(data["entries"]):
            if entry["kind"] == "ws_call":
                yield f"{path.stem}[{index}]", entry


def request_fields(entry: dict[str, Any]) -> dict[str, str]:
    req = entry["request"]
    return dict(req.get("params") or req.get("query") or {})


def answer(function: str, title_part: str = "") -> str:
    """The recorded body of the first exchange of `function` whose title contains `title_part`."""
    for _, entry in ws_calls():
        if entry["function"] == function and title_part in entry["title"]:
            return entry["response"]["body"]
    raise LookupError(f"no recorded {function} {title_part!r}")
