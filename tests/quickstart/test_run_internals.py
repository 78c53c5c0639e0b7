"""The quickstart's own logic: who completes what, and servers shut down when a step fails."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from creditbridge import CreditbridgeError
from creditbridge.quickstart import run as qs
from creditbridge.quickstart.completions import Course, plan_completions


def _enrolments(users: range) -> dict[int, list[Course]]:
    courses = [Course(10, "L-1", "lesson_case", "", 2), Course(11, "L-2", "lesson_case", "", 2),
               Course(12, "L-3", "lesson_case", "", 2), Course(20, "ETH-1", "required", "ethics", 2),
               Course(21, "ETH-2", "required", "ethics", 2)]
    courses += [Course(100 + i, f"E-{i:02d}", "elective", "steam", 1 + i % 4) for i in range(20)]
    return {u: list(courses) for u in users}


def test_plan_is_deterministic_and_per_teacher_stable() -> None:
    a = plan_completions(_enrolments(range(3, 203)), seed=5)
    b = plan_completions(_enrolments(range(3, 203)), seed=5)
    assert a.completions == b.completions
    # Adding teachers never changes what the existing ones do.
    more = plan_completions(_enrolments(range(3, 303)), seed=5)
    assert [c for c in more.completions if c.userid < 203 and not c.webhook_lost] == \
        [c for c in a.completions if not c.webhook_lost]
    assert plan_completions(_enrolments(range(3, 203)), seed=6).completions != a.completions


def test_plan_mixes_learners_realistically() -> None:
    plan = plan_completions(_enrolments(range(3, 1003)), seed=0)
    p = plan.profiles
    assert sum(p.values()) == 1000
    assert 700 < p["finished"] < 900
    assert p["not_started"] > 20 and p["missed_lesson_case"] > 20 and p["few_electives"] > 20
    by_user: dict[int, list[str]] = {}
    for c in plan.completions:
        by_user.setdefault(c.userid, []).append(c.code)
    hours = {c.code: c.hours for c in _enrolments(range(1))[0]}
    for codes in by_user.values():
        assert len(codes) == len(set(codes)), "a course is completed once"
        electives = sum(hours[c] for c in codes if c.startswith("E-"))
        lessons = sum(1 for c in codes if c.startswith("L-"))
        # finished: all 3 lesson cases and >= 14 elective hours; short: a case missing or < 14 hours.
        assert (lessons == 3 and electives >= 14) or lessons == 2 or electives < 14
    # Inside sd-2022's study window (1 Aug - 31 Dec 2022, Beijing time).
    assert all(1659283200 <= c.timecompleted < 1672502400 for c in plan.completions)
    lost = sum(c.webhook_lost for c in plan.completions)
    assert 0 < lost < len(plan.completions) * 0.03


def _quickstart_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith("quickstart-") or t.name == "sandbox-webhook-sender"]


def test_a_failing_step_still_stops_every_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls: list[str] = []
    real_start = qs.start_services

    def spy(*args: object, **kwargs: object) -> qs.Services:
        services = real_start(*args, **kwargs)  # type: ignore[arg-type]
        urls.extend([services.sandbox_url, services.receiver_url, services.registry_url])
        return services

    def broken(*args: object, **kwargs: object) -> None:
        raise CreditbridgeError("rule file exploded")

    monkeypatch.setattr(qs, "start_services", spy)
    monkeypatch.setattr(qs, "_evaluate", broken)
    with pytest.raises(CreditbridgeError, match="rule file exploded"):
        qs.run_quickstart(tmp_path / "qs", teachers=3)
    assert len(urls) == 3
    assert _quickstart_threads() == []
    for url in urls:
        parts = urlsplit(url)
        with pytest.raises(OSError), socket.create_connection((parts.hostname, parts.port), timeout=1):
            pass


def test_refuses_a_directory_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(qs.QuickstartError, match="not a directory"):
        qs.run_quickstart(target, teachers=1)
