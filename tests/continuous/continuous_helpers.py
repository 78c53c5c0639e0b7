"""A small sd-2022 province in the store (teachers and courses known to Moodle by id), signed deliveries of
course completions for it, and the processes of continuous mode (`creditbridge run`, `creditbridge worker`)."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mapping_helpers import SAMPLES
from registry_helpers import KEY_ID, SECRET, id_number

from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow, LessonCaseAssignment, SchoolTopic, Teacher

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCHOOL = "370102001"
AT = datetime(2022, 9, 1, 2, 0, tzinfo=UTC)
LESSONS = ["SD22-L-M-MATH-001", "SD22-L-M-MATH-002", "SD22-L-M-MATH-003"]
ELECTIVES = ["SD22-E-STEAM-04", "SD22-E-PBL-04", "SD22-E-BIG-UNIT-04", "SD22-E-ETHICS-02"]


def catalog() -> list[dict[str, str]]:
    with (SAMPLES / "sd-2022" / "catalog.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def course_ids() -> dict[str, int]:
    """Moodle course id of each catalog code (its row number)."""
    return {r["code"]: i for i, r in enumerate(catalog(), start=1)}


def seed(store: Store, teachers: int) -> list[str]:
    """`teachers` sd-2022 teachers of one school (Moodle user ids 1000+i), their lesson cases assigned and every
    course but the electives done: each elective completed later changes their result."""
    ids = course_ids()
    people = [id_number(i) for i in range(teachers)]
    with store.session() as s:
        for code, r in zip(ids, catalog(), strict=True):
            s.add(CatalogCourse(programme="sd-2022", code=code, title=r["title"], kind=r["kind"],
                                topic=r["topic"] or None, mode=r["mode"], hours=r["hours"], stage=r["stage"] or None,
                                subject=r["subject"] or None, city=r["city"] or None, moodle_course_id=ids[code]))
        for topic in ("ethics", "steam", "pbl", "big-unit"):
            s.add(SchoolTopic(programme="sd-2022", school_code=SCHOOL, topic=topic))
        for i, idn in enumerate(people):
            s.add(Teacher(programme="sd-2022", id_number=idn, name=f"教师{i}", school_code=SCHOOL, school_name="学校",
                          county="历下区", city="济南市", stage="初中", subject="数学", username=f"t{i}",
                          moodle_user_id=1000 + i))
            for c in LESSONS:
                s.add(LessonCaseAssignment(programme="sd-2022", teacher=idn, course=c))
            for c in [*LESSONS, "SD22-ETH-01", "SD22-ETH-02"]:
                s.add(LearningRecordRow(programme="sd-2022", teacher=idn, course=c, kind="course", passed=True,
                                        occurred_at=AT, source=f"seed:{i}:{c}"))
    return people


def completion(userid: int, courseid: int, objectid: int) -> dict[str, Any]:
    """A plugin delivery of a course completion inside sd-2022's 2022 study window."""
    return {"event": "course_completed", "eventname": "\\core\\event\\course_completed", "objectid": objectid,
            "site": "http://127.0.0.1:8765", "user": {"id": userid, "username": f"u{userid}", "idnumber": ""},
            "course": {"id": courseid, "idnumber": ""}, "activity": None, "completionstate": None, "grade": None,
            "grademax": None, "timespent": None, "timecreated": int(AT.timestamp()) + objectid}


def config_text(db_url: str, registry_url: str, *, port: int = 0, extra: str = "") -> str:
    return (f'[database]\nurl = "{db_url}"\n'
            f'[sync]\nprogramme = "sd-2022"\n'
            f'[webhooks]\nsecrets = ["{WEBHOOK_SECRET}"]\nhost = "127.0.0.1"\nport = {port or 8771}\nworkers = 1\n'
            f'[registry]\ntarget = "rest"\nurl = "{registry_url}"\nkey_id = "{KEY_ID}"\nsecret = "{SECRET}"\n'
            f'backoff_seconds = 0.01\ntimeout_seconds = 5.0\n'
            f'[pipeline]\nmode = "continuous"\npoll_seconds = 0.2\nbackoff_seconds = 0.2\nmax_backoff_seconds = 1.0\n'
            f'check_seconds = 2.0\n{extra}')


def start(tmp_path: Path, config: Path, *args: str, name: str = "proc") -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "-v", "--config", str(config), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def registry_rows(db: Path) -> list[sqlite3.Row]:
    """What the registry simulator recorded, read from its own file (not through creditbridge)."""
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT teacher, version, state, deliveries, record_key, payload FROM credit_record"
                            " ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
