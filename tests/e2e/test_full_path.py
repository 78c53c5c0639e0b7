"""The whole path driven the way a user drives it: the CLI commands against running servers.

sync catalog/topics/roster -> sandbox LMS; teachers complete courses there (`creditbridge sandbox
complete`, the admin endpoint over HTTP) -> signed webhooks -> receiver -> `intake status`;
`credits evaluate`; `push`; `report`; and the registry simulator, checked on its own side, holds
each teacher exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from creditbridge.cli.main import cli
from creditbridge.quickstart.province import write_province
from creditbridge.records import mask_id_number
from creditbridge.registry_sim.app import create_app as create_registry
from creditbridge.registry_sim.server import serve_in_thread
from creditbridge.sandbox.app import create_app as create_sandbox
from creditbridge.sandbox.app import state_of
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.webhooks.app import close_app
from creditbridge.webhooks.app import create_app as create_receiver

TOKEN = "e2e-sandbox-token-0123456789abcdef"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REGISTRY_SECRET = "e2e-registry-secret"
BEIJING = timezone(timedelta(hours=8))
# sd-2022 counts only what happens in its 2022 study window: the sandbox's clock lives in that year.
SCHOOL_YEAR = datetime(2022, 9, 5, 9, 0, tzinfo=BEIJING)


@dataclass
class World:
    config: Path
    sandbox_url: str
    sandbox_app: Any
    registry_db: Path
    store_url: str


class SchoolYearClock:
    """The sandbox's clock: starts on SCHOOL_YEAR and moves a minute per reading."""

    def __init__(self) -> None:
        self.t = int(SCHOOL_YEAR.timestamp())

    def __call__(self) -> int:
        self.t += 60
        return self.t


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "creditbridge.toml"
    base: dict[str, Any] = {
        "database": {"url": store_url},
        "sync": {"programme": "sd-2022", "report_dir": str(tmp_path / "reports"), "username_key": "e2e-key"},
        "webhooks": {"secrets": [WEBHOOK_SECRET]},
    }
    config.write_text(tomli_w.dumps(base), encoding="utf-8")
    handles = []
    # The receiver exactly as `creditbridge serve` builds it (settings from the config file).
    receiver_app = create_receiver({"CONFIG_PATH": str(config)})
    receiver = serve_in_thread(receiver_app)
    handles.append(receiver)
    sandbox_app = create_sandbox({"SANDBOX_TOKEN": TOKEN, "SANDBOX_WEBHOOK_URL": receiver.url + "/webhooks/moodle",
                                  "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET})
    state_of(sandbox_app).clock = SchoolYearClock()
    sandbox = serve_in_thread(sandbox_app)
    handles.append(sandbox)
    registry_db = tmp_path / "registry-sim.db"
    registry_app = create_registry({"REGISTRY_SIM_DB": str(registry_db),
                                    "REGISTRY_SIM_KEYS": {"creditbridge": REGISTRY_SECRET}})
    registry = serve_in_thread(registry_app)
    handles.append(registry)
    full = {**base, "moodle": {"url": sandbox.url, "token": TOKEN, "backoff_seconds": 0.0},
            "registry": {"target": "rest", "url": registry.url, "key_id": "creditbridge", "secret": REGISTRY_SECRET,
                         "backoff_seconds": 0.01}}
    config.write_text(tomli_w.dumps(full), encoding="utf-8")
    try:
        yield World(config, sandbox.url, sandbox_app, registry_db, store_url)
    finally:
        sender = sandbox_app.extensions.get("sandbox_webhook_sender")
        if sender is not None:
            sender.stop()
        for h in reversed(handles):
            h.stop()
        close_app(receiver_app)


def _cb(runner: CliRunner, world: World, *args: str) -> Any:
    result: Result = runner.invoke(cli, ["--config", str(world.config), *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return json.loads(result.stdout)


def _complete(runner: CliRunner, world: World, userid: int, courseid: int) -> None:
    """`creditbridge sandbox complete`: what a tester types to mark a course complete in the sandbox."""
    result = runner.invoke(cli, ["sandbox", "complete", "--url", world.sandbox_url, "--token", TOKEN,
                                 "--userid", str(userid), "--courseid", str(courseid), "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["timecompleted"]


def _enrol_all_open(runner: CliRunner, world: World, userid: int) -> set[int]:
    result = runner.invoke(cli, ["sandbox", "enrol-me", "--url", world.sandbox_url, "--token", TOKEN,
                                 "--userid", str(userid), "--all-open", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return set(json.loads(result.stdout)["courseids"])


def test_a_user_runs_the_whole_path(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    files = write_province(tmp_path / "province", teachers=30, seed=11)

    catalog = _cb(runner, world, "sync", "catalog", str(files.catalog))
    topics = _cb(runner, world, "sync", "topics", str(files.topics))
    roster = _cb(runner, world, "sync", "roster", str(files.roster))
    for out in (catalog, topics, roster):
        assert out["errors"] == [], out["errors"][:3]
    assert catalog["created"] == files.courses
    assert roster["created"] == files.teachers - files.leavers
    assert roster["lesson_cases_assigned"] > 0

    # Two teachers in three finish every course they are enrolled in; the rest never start.
    store = open_store(world.store_url)
    try:
        with store.session() as s:
            teachers = [(t.moodle_user_id, t.id_number) for t in s.query(Teacher).order_by(Teacher.id)
                        if t.moodle_user_id is not None and t.status == "active"]
    finally:
        store.dispose()
    assert len(teachers) >= 20
    completions = 0
    finished: set[str] = set()
    self_enrolled: dict[str, set[str]] = {}
    for i, (userid, id_number) in enumerate(teachers):
        if i % 3 == 2:
            continue
        # From 11 July the teacher chooses electives: here every one open to them ("Enrol me", enrol_self limited to
        # the audience cohorts sync put them in), as `creditbridge sandbox enrol-me --all-open` does.
        chosen = _enrol_all_open(runner, world, userid)
        courses = _cb(runner, world, "moodle", "call", "core_enrol_get_users_courses", f"userid={userid}")
        self_enrolled[id_number] = {c["idnumber"] for c in courses if int(c["id"]) in chosen}
        assert courses, f"user {userid} is enrolled in nothing"
        for course in courses:
            _complete(runner, world, userid, int(course["id"]))
            completions += 1
        finished.add(id_number)
    sender = world.sandbox_app.extensions["sandbox_webhook_sender"]
    sender.flush()
    assert sender.failed == 0

    # The receiver answers first and turns deliveries into records in its background thread
    # (webhooks.inline_mode = "background"): watch `intake status` until nothing is pending, as an operator would.
    deadline = time.monotonic() + 60
    intake = _cb(runner, world, "intake", "status")
    while intake["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
        intake = _cb(runner, world, "intake", "status")
    assert intake["pending"] == 0, f"background processing left {intake['pending']} deliveries pending"
    assert intake["received"] == completions
    assert intake["records"] == completions, "each signed completion became exactly one learning record"
    assert intake["rejected"] == 0 and intake["parked"] == 0 and intake["duplicates"] == 0

    # --json: the list, per person, ID numbers masked (the store's full ones are checked below)
    evaluated = [r for r in _cb(runner, world, "credits", "evaluate") if r["role"] == "teacher"]
    assert {mask_id_number(i) for _, i in teachers} <= {r["teacher"] for r in evaluated}, \
        "every active teacher has a result"
    passed_now = {r["teacher"] for r in evaluated if r["passed"]}
    assert passed_now and passed_now <= {mask_id_number(t) for t in finished}, "only teachers who studied pass"
    assert all(r["reasons"] for r in evaluated if not r["passed"]), "every failure says why"
    # The electives a teacher enrolled in themselves count like any course: `credits explain` shows them.
    assert all(self_enrolled.values()) and any(c.startswith("SD22-E-") for cs in self_enrolled.values() for c in cs)
    one = sorted(t for t, cs in self_enrolled.items() if mask_id_number(t) in passed_now)[0]
    explained = _cb(runner, world, "credits", "explain", one)
    # sync enrolled nobody in an elective: every elective hour is one the teacher chose and completed
    assert explained["passed"] and explained["components"]["electives"] >= 18, explained

    pushed = _cb(runner, world, "push")
    assert pushed["rejected"] == 0 and pushed["pending"] == 0
    assert pushed["acknowledged"] == pushed["sent"] > 0

    again = _cb(runner, world, "push")
    assert again["sent"] == 0, "an acknowledged record is never sent again"

    report = _cb(runner, world, "report")
    html = Path(report["report"]["html"])
    assert html.is_file() and html.stat().st_size > 1000

    store = open_store(world.store_url)
    try:
        with store.engine.connect() as c:
            results = {r.teacher: bool(r.passed) for r in c.exec_driver_sql(
                "SELECT teacher, passed FROM credit_result WHERE role = 'teacher'")}
    finally:
        store.dispose()
    passed = {t for t, ok in results.items() if ok}
    assert passed and passed <= finished, "only teachers who studied pass"

    conn = sqlite3.connect(world.registry_db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT teacher, state, deliveries, payload FROM credit_record").fetchall()
    finally:
        conn.close()
    by_teacher: dict[str, list[sqlite3.Row]] = {}
    for r in rows:
        by_teacher.setdefault(r["teacher"], []).append(r)
    # The registry holds each evaluated teacher exactly once, delivered once, with the result creditbridge has.
    assert set(by_teacher) == set(results)
    for teacher, recs in by_teacher.items():
        assert len(recs) == 1 and recs[0]["state"] == "active" and recs[0]["deliveries"] == 1, teacher[-4:]
        assert (json.loads(recs[0]["payload"])["result"] == "passed") == results[teacher]
    assert {t for t, recs in by_teacher.items() if json.loads(recs[0]["payload"])["result"] == "passed"} == passed
