"""Build and send exactly what local_creditbridge sends: the payload (payload.php) and its signed headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from creditbridge.webhooks.payload import MOODLE_EVENTS, WebhookPayload, webhook_id


def build_payload(event: dict[str, Any], *, site: str, user: dict[str, Any], course: dict[str, Any],
                  activity: dict[str, Any] | None = None, grade: float | None = None,
                  grademax: float | None = None, timespent: int | None = None,
                  gradeitem: dict[str, Any] | None = None) -> WebhookPayload:
    """From a Moodle event as the observer sees it. The learner is relateduserid (course_completed is
    raised by cron, whose userid is the admin/cron user). `gradeitem` (id, itemtype, itemmodule, iteminstance,
    idnumber) for a grade, as plugin 1.1 names it; left out, a grade looks like plugin 1.0.0's."""
    other = event.get("other") or {}
    if isinstance(other, str):
        other = json.loads(other or "{}")
    etype = MOODLE_EVENTS[event["eventname"]]
    state = other.get("completionstate")
    return WebhookPayload.model_validate({
        "event": etype.value, "eventname": event["eventname"], "objectid": int(event.get("objectid") or 0),
        "site": site.rstrip("/"),
        "user": {"id": int(user["id"]), "username": user.get("username", ""), "idnumber": user.get("idnumber") or ""},
        "course": {"id": int(course["id"]), "idnumber": course.get("idnumber") or ""},
        "activity": None if activity is None else {"cmid": int(activity["cmid"]),
                                                   "idnumber": activity.get("idnumber") or "",
                                                   "modname": activity.get("modname") or ""},
        "completionstate": None if state is None else int(state), "grade": grade, "grademax": grademax,
        "timespent": timespent, "timecreated": int(event["timecreated"]),
        "gradeitem": None if gradeitem is None else _grade_item(gradeitem)})


def _grade_item(item: dict[str, Any]) -> dict[str, Any]:
    # Ids as integers, as the plugin casts them: an XML answer of Moodle carries them as text.
    instance = item.get("iteminstance")
    return {"id": int(item["id"]), "itemtype": item.get("itemtype"), "itemmodule": item.get("itemmodule"),
            "iteminstance": None if instance is None else int(instance), "idnumber": item.get("idnumber") or ""}


def sign(payload: WebhookPayload, secret: str, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = payload.model_dump_json()
    wid = webhook_id(payload.site, payload.eventname, payload.objectid, payload.timecreated, payload.user.id)
    now = now or datetime.now(UTC)
    return body.encode(), {"webhook-id": wid, "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": Webhook(secret).sign(wid, now, body),
                           "content-type": "application/json"}
