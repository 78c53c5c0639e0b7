"""The JSON body local_creditbridge sends for each Moodle event (schema: payload.schema.json)."""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from creditbridge import CreditbridgeError
from creditbridge.records.id_number import mask_id_numbers

SCHEMA_PATH = Path(__file__).with_name("payload.schema.json")


class EventType(StrEnum):
    course_completed = "course_completed"
    activity_completion_updated = "activity_completion_updated"
    grade_updated = "grade_updated"


# Moodle event class -> payload event type (the observer's mapping in db/events.php).
MOODLE_EVENTS: dict[str, EventType] = {
    "\\core\\event\\course_completed": EventType.course_completed,
    "\\core\\event\\course_module_completion_updated": EventType.activity_completion_updated,
    "\\core\\event\\user_graded": EventType.grade_updated,
}


# Moodle's ids are BIGINT; anything larger cannot be a Moodle id, and SQLite cannot even bind it.
MAX_ID = 2**63 - 1
# 9999-12-31T23:59:59Z: later Unix times do not fit a datetime, so processing could not date the record.
MAX_TIME = 253_402_300_799
# A grade is kept in the score column, Numeric(8, 2): a larger one would be accepted here and then refused by
# PostgreSQL (or kept with another value by SQLite), so the receiver refuses it with a 422 instead.
MAX_GRADE = 1_000_000
# Seconds whose minutes the minutes column, Numeric(10, 2), can hold.
MAX_TIMESPENT = 99_999_999 * 60
# A Moodle id: an integer, never a JSON true/false (lax validation would read `true` as id 1).
MoodleId = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]


class MoodleUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: MoodleId = Field(description="Moodle user id of the learner (relateduserid of the event)")
    username: str = Field(max_length=100)
    idnumber: str = Field("", max_length=255)


class MoodleCourse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: MoodleId
    idnumber: str = Field("", max_length=100, description="Catalog code (set by sync)")


class MoodleActivity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cmid: MoodleId = Field(description="Course module id")
    idnumber: str = Field("", max_length=100, description="Activity code")
    modname: str = Field(max_length=40, description="Module type, e.g. page, quiz, assign")


class MoodleGradeItem(BaseModel):
    """The grade item a grade belongs to (grade_updated from plugin 1.1 on). Plugin 1.0.0 sent none: its grades
    of manual items and of the course total were the same apart from the grade's id."""

    model_config = ConfigDict(extra="forbid")
    id: MoodleId = Field(description="grade_items.id")
    # Moodle's four grade item types (grade_item::$itemtype). Anything else is no grade item the plugin sends:
    # refused, rather than credited like a manual item.
    itemtype: Literal["mod", "manual", "course", "category"] = Field(
        description="mod, manual, course or category (course/category: totals)")
    itemmodule: str | None = Field(None, max_length=40, description="Module of a mod item, e.g. assign")
    iteminstance: Annotated[int, Strict()] | None = Field(None, ge=0, le=MAX_ID,
                                                          description="Module instance id of a mod item")
    idnumber: str = Field("", max_length=100, description="The grade item's ID number (its activity code)")


class WebhookPayload(BaseModel):
    """One Moodle event as the plugin reports it. Extra keys are refused so a typo cannot pass silently."""

    # allow_inf_nan=False: bodies stored before the receiver refused them (a grade of 1e400 read back as inf)
    # fail validation when processed, instead of reaching the database.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, title="local_creditbridge webhook payload")

    event: EventType
    eventname: str = Field(max_length=120, description="The Moodle event class, e.g. \\core\\event\\course_completed")
    objectid: Annotated[int, Strict()] = Field(ge=0, le=MAX_ID, description="objectid of the Moodle event")
    site: str = Field(min_length=1, max_length=255, description="$CFG->wwwroot of the sending site")
    user: MoodleUser
    course: MoodleCourse
    activity: MoodleActivity | None = None
    # Moodle's COMPLETION_INCOMPLETE=0, COMPLETE=1, COMPLETE_PASS=2, COMPLETE_FAIL=3; 0 after 1/2 is a revocation.
    completionstate: Annotated[int, Strict()] | None = Field(None, ge=0, le=3)
    grade: float | None = Field(None, gt=-MAX_GRADE, lt=MAX_GRADE)
    grademax: float | None = Field(None, ge=0, lt=MAX_GRADE)
    gradeitem: MoodleGradeItem | None = None
    timespent: Annotated[int, Strict()] | None = Field(None, ge=0, le=MAX_TIMESPENT,
                                                       description="Seconds spent, where Moodle knows it")
    timecreated: Annotated[int, Strict()] = Field(ge=0, le=MAX_TIME, description="Unix time of the Moodle event")

    @model_validator(mode="after")
    def _mod_item_names_its_activity(self) -> WebhookPayload:
        # The plugin sends a module's grade item only with its course module (collector.php gives up on a grade
        # whose module is gone): without it the grade names no activity and would be credited as a manual score.
        if self.gradeitem is not None and self.gradeitem.itemtype == "mod" and self.activity is None:
            raise PydanticCustomError("mod_item_without_activity",
                                      "activity is null but gradeitem.itemtype is mod: a module's grade needs its "
                                      "activity")
        return self


class PayloadRefused(CreditbridgeError):
    """A signed body that is not a payload: `reason` is the receiver's reason code, the message says where.
    Messages never quote the body (it holds ID numbers)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# orjson's error message for a number beyond a double, and the literals JavaScript writes for non-finite numbers
# (not JSON; orjson refuses them as unexpected characters): both get their own reason, `bad_number`.
_NOT_FINITE = re.compile(r"-?(?:NaN|Infinity)")


def parse_payload(body: bytes) -> tuple[str, WebhookPayload]:
    """A signed body as the text the inbox keeps and the payload it holds, or PayloadRefused. In this order,
    each failure its own reason: strict UTF-8 (`bad_encoding`); JSON by orjson, which refuses NaN/Infinity,
    numbers beyond a double (1e400), lone surrogates and nesting deeper than 1024 (`bad_json`, `bad_number`);
    duplicate keys, which parsers resolve differently (`bad_json`); a NUL character in any string, which
    PostgreSQL text cannot hold (`nul_character`); the schema (`bad_payload`)."""
    try:
        text = body.decode("utf-8")  # strict: a replacement character would change what was signed
    except UnicodeDecodeError as e:
        raise PayloadRefused("bad_encoding", f"body is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        if "infinity" in str(e) or _NOT_FINITE.match(text, e.pos):
            raise PayloadRefused("bad_number", f"not a finite number at char {e.pos}") from None
        raise PayloadRefused("bad_json", f"not JSON: {e}") from None
    # A body that is exactly what orjson writes for what it parsed cannot hold a duplicate key (orjson never
    # writes one): the plugin's compact json_encode output is, so the slower second parse is for other senders.
    try:
        canonical = orjson.dumps(data) == body
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (255 levels): not canonical, parse again
        canonical = False
    if not canonical:
        _refuse_duplicate_keys(text)
    if "\\u0000" in text:  # in valid JSON a NUL can only be written as this escape: skip the walk otherwise
        refuse_nul(data)
    try:
        return text, WebhookPayload.model_validate(data)
    except ValidationError as e:
        raise PayloadRefused("bad_payload", validation_detail(e)) from None


def validation_detail(e: ValidationError) -> str:
    """`field.path: message` of the first error, without the input value, ID numbers masked."""
    first = e.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return _safe(f"{where}: {first['msg']}")


def _safe(detail: str) -> str:
    # Field paths come from the sender's keys: bounded, and any ID number in them masked.
    return mask_id_numbers(detail[:300])


def _refuse_duplicate_keys(text: str) -> None:
    # orjson keeps the last of duplicate keys silently; the stdlib parser's object_pairs_hook is the one
    # parser hook that sees them. Only reached for text orjson accepted, so it parses, but orjson allows
    # 1024 levels of nesting and this parser hits Python's recursion limit before that.
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(items)
        if len(found) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    raise PayloadRefused("bad_json", _safe(f"duplicate key {k[:60]!r}"))
                seen.add(k)
        return found
    try:
        json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise PayloadRefused("bad_json", "nested too deeply") from None


def refuse_nul(data: Any, where: str = "") -> None:
    """PayloadRefused(`nul_character`) if any string (key or value) holds U+0000: PostgreSQL text cannot."""
    if isinstance(data, str):
        if "\x00" in data:
            raise PayloadRefused("nul_character", _safe(f"{where or 'body'}: a NUL character (\\u0000) in a string"))
    elif isinstance(data, dict):
        for k, v in data.items():
            path = f"{where}.{k}" if where else str(k)
            if "\x00" in k:
                raise PayloadRefused("nul_character", _safe(f"{where or 'body'}: a NUL character (\\u0000) in a key"))
            refuse_nul(v, path)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            refuse_nul(v, f"{where}.{i}" if where else str(i))


def webhook_id(site: str, eventname: str, objectid: int, timecreated: int, userid: int) -> str:
    """Stable id of one Moodle event: a retry of the same event carries the same id (payload.php agrees)."""
    raw = f"{site}|{eventname}|{objectid}|{timecreated}|{userid}"
    return "msg_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def payload_webhook_id(p: WebhookPayload) -> str:
    return webhook_id(p.site, p.eventname, p.objectid, p.timecreated, p.user.id)


def json_schema() -> dict[str, Any]:
    return WebhookPayload.model_json_schema()


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_schema()
