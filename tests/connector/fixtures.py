"""Loading the recorded Moodle exchanges (shared by the connector tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.conftest import FIXTURES


def ws_calls() -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, entry) for every recorded HTTP exchange, in recording order."""
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for index, entry in enumerate(data["entries"]):
            if entry["kind"] == "ws_call":
                yield f"{path.stem}[{index}] {entry['title']}", entry


def request_fields(entry: dict[str, Any]) -> dict[str, str]:
    req = entry["request"]
    return dict(req.get("params") or req.get("query") or {})
