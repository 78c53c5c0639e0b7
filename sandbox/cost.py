"""What a web-service call costs on a real Moodle 4.5: the one home of the figures `sandbox --cost real` charges
and the benchmarks' "tool_uploaduser-equivalent" row is computed from.

Source: ../shared/fixtures/moodle-ws/timings.md (Moodle 4.5.6, PHP 8.2, PostgreSQL 15, one PHP process, a
500-teacher first sync of sd-2022, timed per call from the client's -vv log):

| function                         | items per call | mean per call | per item (mean / items) |
|----------------------------------|----------------|---------------|-------------------------|
| enrol_manual_enrol_users         | 100            | 888 ms        | 8.9 ms per enrolment    |
| core_user_create_users           | 100            | 2,062 ms      | 20.6 ms per user        |
| core_cohort_add_cohort_members   | 100            | 361 ms        | 3.6 ms per member       |
| core_user_get_users_by_field     | 50 values      | 91 ms         | (fixed cost)            |

A call is charged FIXED_MS plus a per-item cost. FIXED_MS is the lookup's 91 ms: bootstrapping Moodle, checking
the token and one indexed query, so nearly all of it is what every call pays. The per-item costs are the
measured per-call means less that fixed part, divided by the items ((888 - 91) / 100 = 7.97 ms per enrolment),
so a 100-item call costs exactly what the real site took; charging 8.9 ms per item on top of 91 ms would
count the fixed part twice (981 ms instead of 888).

Functions timings.md does not list are ASSUMPTIONS, marked below: updates and removals cost what the matching
create/add was measured at (Moodle runs the same profile save, events and cache purges); course, category and
cohort creation were never timed at scale (a catalog is made once, so they do not move the sync figures).
Reads are charged the fixed cost only, like the measured lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COSTS = ("none", "real")

# Measured (timings.md).
FIXED_MS = 91.0
ENROLMENT_MS = (888.0 - FIXED_MS) / 100       # 7.97 ms
CREATED_USER_MS = (2062.0 - FIXED_MS) / 100   # 19.71 ms
COHORT_MEMBER_MS = (361.0 - FIXED_MS) / 100   # 2.70 ms
# Assumed (not in timings.md): see the module docstring.
CREATED_COURSE_MS = 200.0  # course + context + sections + enrolment instances: several times a user
CREATED_CATEGORY_MS = CREATED_USER_MS  # a row, a context and a sort-order fix
CREATED_COHORT_MS = COHORT_MEMBER_MS * 3  # a row and an event, no context


@dataclass(frozen=True)
class PerItem:
    """`key`: the request's list parameter whose entries are charged `ms` each; `measured`: from timings.md."""

    key: str
    ms: float
    measured: bool


PER_ITEM: dict[str, PerItem] = {
    "core_user_create_users": PerItem("users", CREATED_USER_MS, True),
    "enrol_manual_enrol_users": PerItem("enrolments", ENROLMENT_MS, True),
    "core_cohort_add_cohort_members": PerItem("members", COHORT_MEMBER_MS, True),
    "core_user_update_users": PerItem("users", CREATED_USER_MS, False),
    "enrol_manual_unenrol_users": PerItem("enrolments", ENROLMENT_MS, False),
    "core_cohort_delete_cohort_members": PerItem("members", COHORT_MEMBER_MS, False),
    "core_course_create_courses": PerItem("courses", CREATED_COURSE_MS, False),
    "core_course_update_courses": PerItem("courses", CREATED_COURSE_MS / 2, False),
    "core_course_create_categories": PerItem("categories", CREATED_CATEGORY_MS, False),
    "core_cohort_create_cohorts": PerItem("cohorts", CREATED_COHORT_MS, False),
}


def _count(value: Any) -> int:
    # php_decode builds `users[0][...]` into a dict keyed "0", "1"...; a JSON-ish caller may hand a list.
    return len(value) if isinstance(value, Mapping | list) else 0


def call_seconds(function: str, params: Mapping[str, Any]) -> float:
    """The seconds a real Moodle 4.5 took for this call (its decoded request parameters)."""
    per = PER_ITEM.get(function)
    items = _count(params.get(per.key)) if per else 0
    return (FIXED_MS + (per.ms * items if per else 0.0)) / 1000


def uploaduser_seconds(*, users: int, cohort_members: int, enrolments: int) -> float:
    """Moodle's admin/tool/uploaduser CLI doing the same work: one PHP process, one user at a time, so no
    web-service call's fixed cost but every item's (user with profile fields, cohort adds, manual enrolments).
    Checked against timings.md: 500 sd-2022 teachers (3 cohorts, 18.8 enrolments each) give 5.6 users/s, inside
    the 5.4-7.1 measured there."""
    ms = users * CREATED_USER_MS + cohort_members * COHORT_MEMBER_MS + enrolments * ENROLMENT_MS
    return ms / 1000
