"""Hostile review: every field of a JSON log line is screened as `--json` output is (redact.json_for_screen),
not only the message and the exception the redacting filter masks. A record's other attributes (a library's
or a caller's `extra`) became fields with full ID numbers, and C1/bidirectional controls went raw to the
terminal tailing the log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from creditbridge.logs import job_context, use_format
from creditbridge.records.id_number import find_id_numbers

ID = "370102198602110011"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("creditbridge.test_json_fields")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    use_format("json", [handler])
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def test_extra_fields_are_masked_and_controls_escaped(json_log: io.StringIO) -> None:
    log = logging.getLogger("creditbridge.test_json_fields")
    with job_context("evaluate", 7):
        log.warning("teacher %s refused", ID, extra={"teacher": ID, "detail": {"key": f"(sd-2022, {ID})"},
                                                     "school": "\u202e校学\x9b2J\x1b[2J"})
    line = json_log.getvalue().strip()
    assert find_id_numbers(line) == []
    assert not any(c in line for c in "\u202e\x9b\x1b")  # written as \u escapes
    doc = json.loads(line)
    assert doc["message"] == "teacher 3701************11 refused"
    assert doc["teacher"] == "3701************11" and doc["detail"] == {"key": "(sd-2022, 3701************11)"}
    assert doc["school"] == "\u202e校学\x9b2J\x1b[2J"  # a JSON reader gets the text back as it was
    assert doc["job"] == "evaluate" and doc["run_id"] == 7 and doc["level"] == "WARNING"
    assert doc["time"][10] == "T" and doc["time"].endswith("+00:00")
