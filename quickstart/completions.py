"""Who finishes what in the quickstart's province: a seeded, realistic mix of learners.

Most teachers do what the programme asks (their lesson cases, the required courses and enough
electives, some more than the cap counts), some stop short (a lesson case left unwatched or too few
elective hours), and a few never start. The completions are recorded in the sandbox LMS, which sends
them as signed webhooks, exactly as the Moodle plugin would."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# The sd-2022 study window is 1 Aug - 31 Dec 2022 (Beijing time); a completion outside it counts for
# nothing, so the demo's completions fall inside it.
BEIJING = timezone(timedelta(hours=8))
WINDOW_START = datetime(2022, 9, 1, 9, 0, tzinfo=BEIJING)
WINDOW_DAYS = 100

# Shares of learner profiles (the rest finish everything the programme asks).
SHARE_NOT_STARTED = 0.06
SHARE_MISSED_LESSON_CASE = 0.06
SHARE_FEW_ELECTIVES = 0.08
# Webhooks that never arrive (a plugin task that failed for good, a receiver down for days): the
# reconciliation poll must find these completions in the LMS.
SHARE_LOST_WEBHOOKS = 0.01


@dataclass(frozen=True)
class Course:
    moodle_id: int
    code: str
    kind: str
    topic: str
    hours: float


@dataclass(frozen=True)
class Completion:
    userid: int
    courseid: int
    code: str
    timecompleted: int
    webhook_lost: bool = False


@dataclass
class CompletionPlan:
    completions: list[Completion] = field(default_factory=list)
    profiles: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, int]:
        return {"completions": len(self.completions), "webhooks_lost": sum(c.webhook_lost for c in self.completions),
                **{f"teachers_{k}": v for k, v in sorted(self.profiles.items())}}


def _profile(rng: random.Random) -> str:
    x = rng.random()
    if x < SHARE_NOT_STARTED:
        return "not_started"
    if x < SHARE_NOT_STARTED + SHARE_MISSED_LESSON_CASE:
        return "missed_lesson_case"
    if x < SHARE_NOT_STARTED + SHARE_MISSED_LESSON_CASE + SHARE_FEW_ELECTIVES:
        return "few_electives"
    return "finished"


def plan_completions(enrolments: dict[int, list[Course]], *, seed: int = 0) -> CompletionPlan:
    """`enrolments`: Moodle user id -> the catalog courses that user is enrolled in (as Moodle says)."""
    plan = CompletionPlan()
    for userid in sorted(enrolments):
        # One generator per teacher: adding a teacher never changes what the others do.
        rng = random.Random(f"{seed}:{userid}")
        profile = _profile(rng)
        plan.profiles[profile] += 1
        if profile == "not_started":
            continue
        courses = sorted(enrolments[userid], key=lambda c: c.code)
        chosen = [c for c in courses if c.kind in ("lesson_case", "required", "task")]
        if profile == "missed_lesson_case":
            cases = [c for c in chosen if c.kind == "lesson_case"]
            if cases:
                chosen.remove(rng.choice(cases))
        electives = [c for c in courses if c.kind == "elective"]
        rng.shuffle(electives)
        # finished: 14 to 22 elective hours (above 18 shows the cap); few: fewer than the 14 needed.
        target = rng.uniform(4, 10) if profile == "few_electives" else rng.uniform(14, 22)
        hours = 0.0
        for c in electives:
            if hours >= target or (profile == "few_electives" and hours + c.hours >= 14):
                continue
            chosen.append(c)
            hours += c.hours
        day = WINDOW_START + timedelta(days=rng.randrange(WINDOW_DAYS))
        for i, c in enumerate(sorted(chosen, key=lambda c: c.code)):
            when = day + timedelta(hours=i // 3, minutes=rng.randrange(60))
            plan.completions.append(Completion(userid, c.moodle_id, c.code, int(when.timestamp()),
                                               webhook_lost=rng.random() < SHARE_LOST_WEBHOOKS))
    if plan.completions and not any(c.webhook_lost for c in plan.completions):
        # At least one, so every run shows the reconciliation at work.
        first = plan.completions[0]
        plan.completions[0] = Completion(first.userid, first.courseid, first.code, first.timecompleted, True)
    return plan


def group_enrolments(pairs: Iterable[tuple[int, Course]]) -> dict[int, list[Course]]:
    out: dict[int, list[Course]] = {}
    for userid, course in pairs:
        out.setdefault(userid, []).append(course)
    return out
