"""Registration-deadline warnings: before each programme's deadline, which teachers have not passed and which
credit records the registry has not acknowledged. Used by the scheduler's deadline_warning job (log) and by
the report (a section and a sheet). ID numbers leave this module masked."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from creditbridge.outbox.service import summary as registry_summary
from creditbridge.programmes import programme_facts
from creditbridge.records import mask_id_number, mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.credits import CreditResult
from creditbridge.store.models.registry import RegistrySubmission

log = logging.getLogger(__name__)
LIST_LIMIT = 1000  # rows per list kept in a report; the totals always count everything


def scrub(text: str | None) -> str | None:
    """Mask ID numbers inside free text (a registry's rejection reason may quote one)."""
    return None if text is None else mask_id_numbers(text)


def programmes(settings: Settings, store: Store, programme: str | None = None) -> list[str]:
    if programme:
        return [programme]
    found = {settings.sync.programme}
    with store.session() as s:
        found |= set(s.scalars(select(Teacher.programme).distinct()))
        t = CreditResult.__table__
        found |= set(s.scalars(select(t.c.programme).distinct()))
    return sorted(found)


def _today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.scheduler.timezone)).date()


def deadline_warnings(settings: Settings, store: Store, *, today: date | None = None, programme: str | None = None,
                      limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """One entry per programme: deadline, days left, whether it is inside the warning window
    (scheduler.deadline_warning_days), the teachers not passed and the records not acknowledged."""
    today = today or _today(settings)
    days = settings.scheduler.deadline_warning_days
    return [_one(store, code, today, days, limit) for code in programmes(settings, store, programme)]


def _one(store: Store, code: str, today: date, days: int, limit: int) -> dict[str, Any]:
    """Streams the roster and the results (a province has a million teachers): only the first `limit` rows
    of each list are kept, the totals count them all."""
    t = CreditResult.__table__
    not_passed: list[dict[str, Any]] = []
    not_passed_total = 0
    not_pushed: list[dict[str, Any]] = []
    not_pushed_total = 0
    year = None
    with store.session() as s:
        passed: set[str] = set()
        year = s.scalar(select(func.max(t.c.year)).where(t.c.programme == code))
        passed = set(s.scalars(select(t.c.teacher).where(t.c.programme == code, t.c.role == "teacher",
                                                         t.c.passed.is_(True))))
        for tr in s.execute(select(Teacher.id_number, Teacher.name, Teacher.school_code, Teacher.school_name,
                                   Teacher.county, Teacher.city)
                            .where(Teacher.programme == code, Teacher.status == "active")
                            .order_by(Teacher.id_number)):
            if tr.id_number in passed:
                continue
            not_passed_total += 1
            if len(not_passed) < limit:
                not_passed.append({"id_number": tr.id_number, "name": tr.name, "school_code": tr.school_code,
                                   "school_name": tr.school_name, "county": tr.county, "city": tr.city})
        del passed
        # Details (credits, reasons) only for the teachers listed.
        listed = {r["id_number"]: r for r in not_passed}
        ids = list(listed)
        for i in range(0, len(ids), 500):
            for r in s.execute(select(t.c.teacher, t.c.credits, t.c.reasons)
                               .where(t.c.programme == code, t.c.role == "teacher",
                                      t.c.teacher.in_(ids[i:i + 500]))):
                listed[r.teacher]["result"] = r
        submitted = set(s.execute(select(RegistrySubmission.teacher, RegistrySubmission.role)
                                  .where(RegistrySubmission.programme == code).distinct()).all())
        for r in s.execute(select(t.c.teacher, t.c.role, t.c.year).where(t.c.programme == code)
                           .order_by(t.c.teacher)):
            if (r.teacher, r.role) in submitted:
                continue
            not_pushed_total += 1
            if len(not_pushed) < limit:
                not_pushed.append({"teacher": mask_id_number(r.teacher), "role": r.role, "year": r.year,
                                   "version": None, "state": "not pushed", "reason": None})
    for row in not_passed:
        res = row.pop("result", None)
        row["teacher"] = mask_id_number(row.pop("id_number"))
        row["credits"] = float(res.credits) if res is not None and res.credits is not None else None
        row["status"] = "not evaluated" if res is None else "not passed"
        row["reasons"] = [scrub(str(x)) for x in (res.reasons or [])] if res is not None else []
    facts = programme_facts(code)
    deadline, name, name_en = facts.deadline_in(int(year) if year is not None else None), facts.name, facts.name_en
    days_left = (deadline - today).days if deadline else None
    warning = days_left is not None and 0 <= days_left <= days

    reg = registry_summary(store, programme=code)
    open_ = [_registry_row(r) for r in (*reg["rejected"], *reg["pending"])]
    not_ack = (open_ + not_pushed)[:limit]
    return {"programme": code, "name": name, "name_en": name_en, "deadline": deadline.isoformat() if deadline else None,
            "days_left": days_left, "warning": warning, "window_days": days,
            "not_passed_total": not_passed_total, "not_passed": not_passed,
            "not_acknowledged_total": len(open_) + not_pushed_total, "not_acknowledged": not_ack}


def _registry_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"teacher": mask_id_number(r["teacher"]), "role": r["role"], "year": r["year"], "version": r["version"],
            "state": r["state"], "reason": scrub(r.get("reason"))}


def log_warnings(warnings: Iterable[dict[str, Any]], sample: int = 20) -> None:
    """The log side of the warning: counts, and the first few masked names per list."""
    for w in warnings:
        if not w["warning"]:
            log.info("%s: registration deadline %s in %s days (warnings start %s days before)", w["programme"],
                     w["deadline"], w["days_left"], w["window_days"])
            continue
        log.warning("%s: registration deadline %s in %d day(s): %d teacher(s) not passed, %d record(s) not "
                    "acknowledged by the registry", w["programme"], w["deadline"], w["days_left"],
                    w["not_passed_total"], w["not_acknowledged_total"])
        for r in w["not_passed"][:sample]:
            log.warning("%s: not passed: %s %s (%s, %s)", w["programme"], r["teacher"], r["name"], r["school_name"],
                        r["status"])
        for r in w["not_acknowledged"][:sample]:
            log.warning("%s: not acknowledged: %s (%s) %s%s", w["programme"], r["teacher"], r["role"], r["state"],
                        f": {r['reason']}" if r.get("reason") else "")
