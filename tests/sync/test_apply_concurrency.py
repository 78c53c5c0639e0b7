"""moodle.concurrency: sync apply keeps several calls in flight against a site that serves several at once,
backs off as a whole when the site is overloaded, and the store stays exact when the run is cut short (an
outage answered HTTP 503, a SIGKILL of the real `creditbridge sync roster` process)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_process import child_env, cli_argv
from click.testing import CliRunner
from sqlalchemy import select
from sync_helpers import SAMPLES, Env, make_env, people, write_roster

from creditbridge.connector.transport import Limiter
from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.sync import CohortMember, Enrolment


class Site:
    def __init__(self, app: Any, url: str, token: str) -> None:
        self.app, self.url, self.token = app, url, token
        self.state = state_of(app)

    def outage(self, *, after: int, calls: int) -> None:
        answer = requests.post(f"{self.url}/sandbox/admin/outage",
                               data={"wstoken": self.token, "after": after, "calls": calls}, timeout=10)
        assert answer.ok, answer.text

    def holdings(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """username -> (course idnumbers enrolled in, cohort idnumbers), for every account sync made."""
        users = {r["id"]: r["username"] for r in self.state.rows("SELECT id, username FROM user WHERE id > 2")}
        courses: dict[int, set[str]] = {i: set() for i in users}
        cohorts: dict[int, set[str]] = {i: set() for i in users}
        for r in self.state.rows("SELECT ue.userid, c.idnumber FROM user_enrolments ue JOIN enrol e ON e.id = "
                                 "ue.enrolid JOIN course c ON c.id = e.courseid"):
            courses[r["userid"]].add(r["idnumber"])
        for r in self.state.rows("SELECT m.userid, c.idnumber FROM cohort_members m JOIN cohort c ON "
                                 "c.id = m.cohortid"):
            cohorts[r["userid"]].add(r["idnumber"])
        return {name: (frozenset(courses[i]), frozenset(cohorts[i])) for i, name in users.items()}


@pytest.fixture
def site() -> Iterator[Site]:
    """A sandbox serving four requests at once (four PHP processes); cost none until a test asks."""
    token = uuid.uuid4().hex
    app = create_app({"SANDBOX_TOKEN": token, "SANDBOX_DB": ":memory:", "SANDBOX_WORKERS": 4})
    handle = serve_in_thread(app)
    try:
        yield Site(app, handle.url, token)
    finally:
        handle.stop()
        state_of(app).close()


def store_holdings(env: Env) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            teachers = {t.id_number: t for t in s.scalars(select(Teacher))}
            courses: dict[str, set[str]] = {t: set() for t in teachers}
            cohorts: dict[str, set[str]] = {t: set() for t in teachers}
            for e in s.scalars(select(Enrolment)):
                courses[e.teacher].add(e.course)
            for m in s.scalars(select(CohortMember)):
                cohorts[m.teacher].add(m.cohort)
        return {t.username: (frozenset(courses[i]), frozenset(cohorts[i])) for i, t in teachers.items()}
    finally:
        store.dispose()


def staff(n: int) -> list[Any]:
    return [*people(n - n // 3), *people(n // 3, start=100, stage="小学", subject="语文", school="370102002",
                                          school_name="济南市历下区实验小学")]


def prepared(tmp_path: Path, site: Site, runner: CliRunner, sqlite_url: str, concurrency: int,
             teachers: int) -> tuple[Env, Path]:
    env = make_env(tmp_path, site, sqlite_url, concurrency=concurrency)
    env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    env.sync(runner, "topics", SAMPLES / "topics.csv")
    return env, write_roster(tmp_path / "roster.csv", staff(teachers))


# ---------------------------------------------------------------- the limiter


def _run_at_once(target: Callable[[], None], n: int) -> None:
    """`target` in n threads started together, each given 10 s to finish."""
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)


def test_limiter_halves_on_overload_and_climbs_back_slowly() -> None:
    limiter = Limiter(8)
    with limiter.slot("f") as report:
        report(503, None)
    assert limiter.limit == 4 and limiter.lowest == 4
    with limiter.slot("f") as report:
        report(429, None)
    assert limiter.limit == 2
    for _ in range(2):  # `limit` good answers in a row raise it by one
        with limiter.slot("f") as report:
            report(200, None)
    assert limiter.limit == 3
    for _ in range(3 + 4 + 5 + 6):
        with limiter.slot("f") as report:
            report(200, None)
    assert limiter.limit == 7
    for _ in range(100):
        with limiter.slot("f") as report:
            report(200, None)
    assert limiter.limit == 8  # never above the setting
    assert limiter.in_flight == 0


def test_limiter_cuts_once_for_calls_that_were_in_flight_together() -> None:
    """Four calls refused together are one overload, not four: the limit halves once."""
    limiter = Limiter(8)
    slots = [limiter.slot("f") for _ in range(4)]
    reports = [s.__enter__() for s in slots]
    for s, report in zip(slots, reports, strict=True):
        report(503, None)
        s.__exit__(None, None, None)
    assert limiter.limit == 4


def test_limiter_counts_a_call_far_slower_than_its_fastest_as_overload() -> None:
    now = [0.0]
    limiter = Limiter(4, clock=lambda: now[0])
    for took in (0.5, 0.6, 1.4):  # within 3x of the fastest: fine
        with limiter.slot("enrol") as report:
            now[0] += took
            report(200, None)
    assert limiter.limit == 4
    with limiter.slot("enrol") as report:
        now[0] += 2.0  # 4x the fastest and over a second
        report(200, None)
    assert limiter.limit == 2
    with limiter.slot("lookup") as report:  # another function has its own yardstick
        now[0] += 2.0
        report(200, None)
    assert limiter.limit == 2


def test_limiter_compares_a_call_with_calls_of_its_size() -> None:
    """A batch halved down to one record answers fast; a full batch after it is no sign of overload."""
    now = [0.0]
    limiter = Limiter(4, clock=lambda: now[0])
    for size, took in ((8, 0.1), (800, 2.0), (900, 2.2)):
        with limiter.slot("create", size) as report:
            now[0] += took
            report(200, None)
    assert limiter.limit == 4
    with limiter.slot("create", 850) as report:
        now[0] += 7.0
        report(200, None)
    assert limiter.limit == 2


def test_limiter_holds_every_thread_for_retry_after() -> None:
    limiter = Limiter(4, max_pause=8.0)
    with limiter.slot("f") as report:
        report(503, 0.4)
    started = time.monotonic()
    waited: list[float] = []

    def other() -> None:
        with limiter.slot("g") as report:
            waited.append(time.monotonic() - started)
            report(200, None)

    _run_at_once(other, 3)
    assert len(waited) == 3 and min(waited) >= 0.3


def test_limiter_keeps_at_most_limit_in_flight() -> None:
    limiter = Limiter(3)
    peak = [0]
    lock = threading.Lock()

    def call() -> None:
        with limiter.slot("f") as report:
            with lock:
                peak[0] = max(peak[0], limiter.in_flight)
            time.sleep(0.02)
            report(200, None)

    _run_at_once(call, 12)
    assert peak[0] == 3 and limiter.in_flight == 0


def test_limiter_refuses_a_ceiling_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Limiter(0)


# ---------------------------------------------------------------- sync apply


def test_concurrency_one_and_four_give_the_same_end_state(tmp_path: Path, runner: CliRunner) -> None:
    ends = []
    for concurrency in (1, 4):
        token = uuid.uuid4().hex
        app = create_app({"SANDBOX_TOKEN": token, "SANDBOX_DB": ":memory:", "SANDBOX_WORKERS": 4})
        handle = serve_in_thread(app)
        try:
            site = Site(app, handle.url, token)
            work = tmp_path / f"c{concurrency}"
            work.mkdir()
            env, roster = prepared(work, site, runner, f"sqlite:///{work / 'state.db'}", concurrency, 15)
            out = env.sync(runner, "roster", roster)
            assert out["errors"] == [] and out["created"] == 15
            held = site.holdings()
            assert held == store_holdings(env)
            assert env.sync(runner, "roster", roster)["lms_calls"] == 0
            ends.append(held)
        finally:
            handle.stop()
            state_of(app).close()
    assert ends[0] == ends[1]
    # each teacher: enrolled courses, their school, county and city cohorts, and the electives' audience cohorts
    assert len(ends[0]) == 15 and all(
        courses and len({c for c in cohorts if not c.startswith("audience:")}) == 3
        and any(c.startswith("audience:") for c in cohorts) for courses, cohorts in ends[0].values())


def test_an_outage_mid_apply_backs_off_then_the_next_run_resumes(tmp_path: Path, site: Site, runner: CliRunner,
                                                                 sqlite_url: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The site answers 503 to every call for a while once the roster's apply is under way: the workers back
    off together (the limiter halves), the run stops cleanly with the store matching the site, and the next run
    finishes without duplicates."""
    env, roster = prepared(tmp_path, site, runner, sqlite_url, 4, 15)
    site.outage(after=12, calls=10_000)
    with caplog.at_level(logging.WARNING, logger="creditbridge.connector.transport"):
        cut = env.sync(runner, "roster", roster, expect=1)
    assert any("run stopped" in e["reason"] and "HTTP 503" in e["reason"] for e in cut["errors"])
    assert any("overloaded (HTTP 503)" in r.getMessage() and "2 call(s) at a time" in r.getMessage()
               for r in caplog.records)
    mid = site.holdings()
    store = store_holdings(env)
    # Everything the store says the site has, the site has (the site may hold a batch the store did not hear of).
    for username, (courses, cohorts) in store.items():
        assert courses <= mid[username][0] and cohorts <= mid[username][1]
    assert 0 < len(mid)
    site.outage(after=0, calls=0)
    done = env.sync(runner, "roster", roster)
    assert done["errors"] == []
    end = site.holdings()
    assert end == store_holdings(env) and len(end) == 15
    assert env.sync(runner, "roster", roster)["lms_calls"] == 0


def test_a_short_outage_is_ridden_out_by_retries(tmp_path: Path, site: Site, runner: CliRunner,
                                                 sqlite_url: str) -> None:
    """Reads and the writes made safe by checking first (account creation) retry after Retry-After: a 503 for a
    couple of calls while accounts are being made does not stop the run."""
    env, roster = prepared(tmp_path, site, runner, sqlite_url, 4, 12)
    text = env.config.read_text(encoding="utf-8").replace("retries = 0", "retries = 3")
    env.config.write_text(text.replace("backoff_seconds = 0", "backoff_seconds = 0.05"), encoding="utf-8")
    site.outage(after=1, calls=2)
    out = env.sync(runner, "roster", roster)
    assert out["errors"] == [] and out["created"] == 12
    assert site.holdings() == store_holdings(env)


def test_sigkill_mid_apply_then_rerun_leaves_no_duplicates(tmp_path: Path, site: Site, runner: CliRunner,
                                                          sqlite_url: str) -> None:
    """A real `creditbridge sync roster` process, killed with SIGKILL while its enrolment calls are in flight
    against a site that takes a real Moodle's time; the next run finishes the job: store == site."""
    env, roster = prepared(tmp_path, site, runner, sqlite_url, 4, 15)
    site.app.config["SANDBOX_COST"] = "real"  # slow enough to be caught mid-apply
    proc = subprocess.Popen(cli_argv(env.config, "sync", "roster", str(roster)), env=child_env(env.env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while site.state.scalar("SELECT count(*) FROM user_enrolments") < 40:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no enrolments reached the site"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    site.app.config["SANDBOX_COST"] = "none"
    killed = site.holdings()
    for username, (courses, cohorts) in store_holdings(env).items():
        assert courses <= killed[username][0] and cohorts <= killed[username][1]
    # The killed run's sync lock must not keep the next run out.
    done = env.sync(runner, "roster", roster)
    assert done["errors"] == []
    end = site.holdings()
    assert len(end) == 15 and end == store_holdings(env)
    assert site.state.scalar("SELECT count(*) FROM user WHERE id > 2") == 15
    assert env.sync(runner, "roster", roster)["lms_calls"] == 0
