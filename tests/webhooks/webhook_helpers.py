"""Building signed deliveries the way local_creditbridge does, and a seeded teacher/course."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from standardwebhooks.webhooks import Webhook

from creditbridge.settings import Settings
from creditbridge.store import Store, open_store
from creditbridge.store.models.core import CatalogCourse, Teacher
from creditbridge.webhooks import resources
from creditbridge.webhooks.payload import webhook_id

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_c2VjcmV0LW9uZS1yb3RhdGVkLW91dC0xMjM0NTY="
SITE = "http://127.0.0.1:8765"
ID_NUMBER = "11010519491231002X"


def settings_for(url: str, secrets: list[str] | None = None) -> Settings:
    return Settings.model_validate({"database": {"url": url},
                                    "webhooks": {"secrets": secrets if secrets is not None else [SECRET]}})


def settle(app: Flask) -> None:
    """Wait for what the sender's 2xx does not wait for: the app's background processing of the deliveries it
    stored (the default, webhooks.inline_mode = "background"). Nothing to wait for in "request" mode."""
    processor = resources.background_if_started(app)
    assert processor is None or processor.drain(30.0), "background processing did not finish within 30 s"


def payload(event: str = "course_completed", *, userid: int = 16, courseid: int = 7, objectid: int = 1,
            timecreated: int = 1795385698, state: int | None = None, cmid: int = 7,
            course_idnumber: str = "PD-COMP201", username: str = "tch200001") -> dict[str, Any]:
    names = {"course_completed": "\\core\\event\\course_completed",
             "activity_completion_updated": "\\core\\event\\course_module_completion_updated",
             "grade_updated": "\\core\\event\\user_graded"}
    p: dict[str, Any] = {
        "event": event, "eventname": names[event], "objectid": objectid, "site": SITE,
        "user": {"id": userid, "username": username, "idnumber": ""},
        "course": {"id": courseid, "idnumber": course_idnumber},
        "activity": None, "completionstate": None, "grade": None, "grademax": None, "timespent": None,
        "timecreated": timecreated}
    if event != "course_completed":
        p["activity"] = {"cmid": cmid, "idnumber": f"ACT-{cmid}", "modname": "page"}
        p["completionstate"] = 1 if state is None else state
    return p


def signed(p: dict[str, Any], secret: str = SECRET, when: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(p, separators=(",", ":"))
    wid = webhook_id(p["site"], p["eventname"], p["objectid"], p["timecreated"], p["user"]["id"])
    when = when or datetime.now(UTC)
    sig = Webhook(secret).sign(wid, when, body)
    return body.encode(), {"webhook-id": wid, "webhook-timestamp": str(int(when.timestamp())),
                           "webhook-signature": sig, "content-type": "application/json"}


def seed(store: Store, *, userid: int | None = 16, username: str = "tch200001") -> None:
    with store.session() as s:
        s.add(Teacher(programme="sd-2022", id_number=ID_NUMBER, name="Eli", school_code="S1", school_name="S",
                      county="C", city="J", stage="primary", username=username, moodle_user_id=userid))
        s.add(CatalogCourse(programme="sd-2022", code="PD-COMP201", title="Assessment", kind="required",
                            hours=Decimal("6"), moodle_course_id=7))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """`creditbridge serve` (gunicorn) in a subprocess on 127.0.0.1 and a free port: `.url`, `.config` (the
    config file, for CLI commands), `.log` (gunicorn's stderr: worker errors and tracebacks)."""

    def __init__(self, proc: subprocess.Popen, url: str, config: Path, log: Path) -> None:
        self.proc, self.url, self.config, self.log = proc, url, config, log

    def stop(self) -> None:
        """SIGTERM to the gunicorn master: the graceful stop an operator or systemd gives it."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=60)


def start_receiver(tmp_path: Path, db_url: str, extra: str = "", *, workers: int = 2,
                   worker_class: str = "gevent") -> Receiver:
    """Migrate the store, then serve it with gunicorn; `extra` adds lines to the config's [webhooks] section."""
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n'
                   f'worker_class = "{worker_class}"\n{extra}')
    port = free_port()
    open_store(db_url).dispose()  # migrate before the workers start
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "serve",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return Receiver(proc, url, cfg, log)
        except requests.RequestException:  # not listening yet, or workers still booting
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"receiver did not start: {log.read_text(errors='replace')[-2000:]}")


def signed_bytes(body: bytes, wid: str, *, secret: str = SECRET, when: datetime | None = None,
                 content_type: str = "application/json") -> dict[str, str]:
    """Headers signing `body` byte for byte (as a sender that signs whatever it sends would)."""
    when = when or datetime.now(UTC)
    return {"webhook-id": wid, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(wid, when, body), "content-type": content_type}
