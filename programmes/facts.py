"""What the flows take from a programme, in one typed record: sync's topic and lesson-case rules and course
category name, the registry record's name and dates, the report's deadline and names.

A programme either has a rule file (programmes/rules/<id>.yaml, or a path) or has none. Without one, no
programme rule applies (no topic cap, no mandatory or free topics, no lesson cases), it is named by its code,
and its dates are its calendar year's (docs/rules.md). A rule file that exists but cannot be read or is invalid
raises (ProgrammeNotFound naming it, RuleFileError listing its problems): no other programme ever stands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from creditbridge.programmes.loading import load_programme_if_any

# A year in a programme code (sd-2022, hf-2021-it2), not inside a longer number.
_YEAR = re.compile(r"(?<!\d)(19|20)\d{2}(?!\d)")


@dataclass(frozen=True)
class ProgrammeFacts:
    """source: "rules" when read from the programme's rule file, "no rule file" for a programme that has none."""

    code: str  # as the flow named the programme (settings, a result's programme column)
    source: Literal["rules", "no rule file"]
    name: str  # the rule file's `name`; without one, the code
    name_en: str  # the rule file's `name_en`, else its `name`; without one, the code
    deadline: date | None = None  # credits registered by; None without a rule file (see deadline_in)
    max_topics: int | None = None  # per school, free topics not counted
    mandatory_topics: tuple[str, ...] = ()
    free_topics: tuple[str, ...] = ()  # count without being chosen (subject electives)
    lesson_cases: int = 0  # drawn per teacher
    lesson_case_match: tuple[str, ...] = ()  # teacher fields a drawn lesson case matches (stage, subject, city)

    @property
    def by_city(self) -> bool:
        """Lesson cases are drawn from the teacher's own city."""
        return "city" in self.lesson_case_match

    def deadline_in(self, year: int | None = None) -> date | None:
        """The rule file's deadline; without a rule file, 31 Dec of `year`, else of the year the code names
        (sd-2022), else None."""
        if self.source == "rules":
            return self.deadline
        if year is None:
            m = _YEAR.search(self.code)
            year = int(m.group(0)) if m else None
        return date(year, 12, 31) if year is not None else None


def programme_facts(code: str | Path) -> ProgrammeFacts:
    """The programme's facts, from its rule file (a shipped programme's id, or a rule file's path), or the facts
    of a programme that has none. A broken rule file raises, its problems listed."""
    asked = str(code)
    p = load_programme_if_any(code)
    if p is None:
        return ProgrammeFacts(asked, "no rule file", asked, asked)
    pool = p.lesson_case_pool()
    return ProgrammeFacts(
        code=asked,
        source="rules",
        name=p.name,
        name_en=p.name_en or p.name,
        deadline=p.deadline,
        max_topics=p.topics.max_per_school,
        mandatory_topics=tuple(p.topics.mandatory),
        free_topics=tuple(p.topics.free),
        lesson_cases=pool.n if pool is not None else 0,
        lesson_case_match=tuple(pool.match) if pool is not None else (),
    )
