"""The sandbox's stand-in for local_creditbridge (as plugin 1.1.0 and later send): on each completion the
sandbox records, build the plugin's payload, sign it the Standard Webhooks way and POST it to
SANDBOX_WEBHOOK_URL. A grade names its grade item (and, for an activity's item, the activity); the course
total's user_graded, which regrading raises beside it, is not sent (golden pairs 05 and 07 of
local_creditbridge/tests/fixtures/golden).

Like the plugin's adhoc task, sending happens off the request that changed the state (a queue and one
worker thread) and is retried with backoff; the webhook id is derived from the event, so a retry is
recognised by the receiver as the same delivery.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from creditbridge.webhooks.sender import build_payload, sign

log = logging.getLogger(__name__)


def _lookup(state: Any, names: tuple[str, ...], key: Any) -> dict[str, Any] | None:
    for name in names:
        fn = getattr(state, name, None)
        if callable(fn):
            found = fn(key)
            if found is not None:
                return dict(found)
    return None


class WebhookSender:
    def __init__(self, url: str, secret: str, site: str, state: Any, *, retries: int = 5,
                 backoff: float = 0.2) -> None:
        self.url, self.secret, self.site, self.state = url, secret, site, state
        self.http = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.sent = 0
        self.failed = 0
        self.skipped = 0  # events the plugin sends nothing for (course totals)
        self._thread = threading.Thread(target=self._run, name="sandbox-webhook-sender", daemon=True)
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        self.queue.put(dict(event))

    def payload_for(self, event: dict[str, Any]) -> Any | None:
        """The payload the plugin sends for the event, or None where it sends nothing (a course total)."""
        learner = int(event.get("relateduserid") or event["userid"])
        user = event.get("user") or _lookup(self.state, ("get_user", "user"), learner) or {"id": learner}
        course = event.get("course") or _lookup(self.state, ("get_course", "course"), int(event["courseid"])) \
            or {"id": int(event["courseid"])}
        activity = gradeitem = None
        if event["eventname"] == "\\core\\event\\user_graded":
            itemid = int((event.get("other") or {}).get("itemid") or 0)
            if itemid == 0:  # the sandbox's course total item (state.grade_activity): not sent since plugin 1.1.0
                return None
            # The sandbox grades an activity through an item whose id is the activity's cmid.
            cm = _lookup(self.state, ("get_course_module",), itemid) or {"id": itemid, "cmid": itemid}
            activity = {"cmid": itemid, "idnumber": cm.get("idnumber") or "", "modname": cm.get("modname") or ""}
            gradeitem = {"id": itemid, "itemtype": "mod", "itemmodule": cm.get("modname"),
                         "iteminstance": cm.get("instance"), "idnumber": cm.get("idnumber") or ""}
        elif event["eventname"] != "\\core\\event\\course_completed":
            cmid = int(event.get("contextinstanceid") or 0)
            activity = event.get("activity") or _lookup(self.state, ("get_course_module", "get_activity"), cmid) \
                or {"cmid": cmid}
            activity.setdefault("cmid", activity.get("id", cmid))
        user.setdefault("id", learner)
        course.setdefault("id", int(event["courseid"]))
        return build_payload(event, site=self.site, user=user, course=course, activity=activity,
                             grade=event.get("grade"), grademax=event.get("grademax"),
                             timespent=event.get("timespent"), gradeitem=gradeitem)

    def send(self, event: dict[str, Any]) -> int | None:
        """POST the event's payload; its HTTP status, 0 when curl security blocks the URL, None when the plugin
        sends nothing for the event."""
        payload = self.payload_for(event)
        if payload is None:  # the plugin's observer queues nothing for it
            self.skipped += 1
            return None
        flag = getattr(self.state, "flag", None)
        if callable(flag) and flag("sandbox_receiver_blocked"):
            # Moodle's curl security refuses the URL before any connection: no HTTP status at all.
            log.warning("Webhook send failed (The URL is blocked.)")
            return 0
        body, headers = sign(payload, self.secret)
        r = self.http.post(self.url, data=body, headers=headers, timeout=10)
        if r.status_code >= 400:
            log.warning("webhook refused: %s %s", r.status_code, r.text[:200])
        return r.status_code

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            try:
                status = self.send(event)
                if status is None:
                    pass
                elif 200 <= status < 300:
                    self.sent += 1
                else:
                    self.failed += 1
            except Exception:  # one bad event must not stop the sender thread
                self.failed += 1
                log.exception("webhook send failed")
            finally:
                self.queue.task_done()

    def flush(self) -> None:
        """Wait until everything queued so far has been sent (tests)."""
        self.queue.join()

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=5)


def install(app: Any, state: Any) -> WebhookSender:
    """Called by the sandbox's create_app when SANDBOX_WEBHOOK_URL is set."""
    cfg = app.config
    site = cfg.get("SANDBOX_WWWROOT") or cfg.get("SANDBOX_SITE") or "http://127.0.0.1:8765"
    sender = WebhookSender(cfg["SANDBOX_WEBHOOK_URL"], cfg["SANDBOX_WEBHOOK_SECRET"], site, state)
    state.add_completion_listener(sender)
    app.extensions["sandbox_webhook_sender"] = sender
    return sender
