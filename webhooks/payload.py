"""The JSON body local_creditbridge sends for each Moodle event (schema: payload.schema.json)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class MoodleUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, description="Moodle user id of the learner (relateduserid of the event)")
    username: str = Field(max_length=100)
    idnumber: str = Field("", max_length=255)


class MoodleCourse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1)
    idnumber: str = Field("", max_length=100, description="Catalog code (set by sync)")


class MoodleActivity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cmid: int = Field(ge=1, description="Course module id")
    idnumber: str = Field("", max_length=100, description="Activity code")
    modname: str = Field(max_length=40, description="Module type, e.g. page, quiz, assign")


class MoodleGradeItem(BaseModel):
    """The grade item a grade belongs to (grade_updated from plugin 1.1 on). Plugin 1.0.0 sent none: its grades
    of manual items and of the course total were the same apart from the grade's id."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, description="grade_items.id")
    itemtype: str = Field(max_length=30, description="mod, manual, course or category (course/category: totals)")
    itemmodule: str | None = Field(None, max_length=40, description="Module of a mod item, e.g. assign")
    iteminstance: int | None = Field(None, ge=0, description="Module instance id of a mod item")
    idnumber: str = Field("", max_length=100, description="The grade item's ID number (its activity code)")


class WebhookPayload(BaseModel):
    """One Moodle event as the plugin reports it. Extra keys are refused so a typo cannot pass silently."""

    model_config = ConfigDict(extra="forbid", title="local_creditbridge webhook payload")

    event: EventType
    eventname: str = Field(max_length=120, description="The Moodle event class, e.g. \\core\\event\\course_completed")
    objectid: int = Field(ge=0, description="objectid of the Moodle event")
    site: str = Field(min_length=1, max_length=255, description="$CFG->wwwroot of the sending site")
    user: MoodleUser
    course: MoodleCourse
    activity: MoodleActivity | None = None
    # Moodle's COMPLETION_INCOMPLETE=0, COMPLETE=1, COMPLETE_PASS=2, COMPLETE_FAIL=3; 0 after 1/2 is a revocation.
    completionstate: int | None = Field(None, ge=0, le=3)
    grade: float | None = None
    grademax: float | None = Field(None, ge=0)
    gradeitem: MoodleGradeItem | None = None
    timespent: int | None = Field(None, ge=0, description="Seconds spent, where Moodle knows it")
    timecreated: int = Field(ge=0, description="Unix time of the Moodle event")


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
