"""How much waits for the registry: results not yet in the outbox, and submissions not yet sent or answered; and
`status`, those figures with the teachers still waiting for evaluation before them (mappings/marks.py), the view
`credits status`, `intake status` and the metrics show. It lives here, above both flows (the import contracts'
layers), so that mappings never imports the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from creditbridge.mappings.marks import waiting as evaluation_waiting
from creditbridge.outbox.build import PUSHED_ROLES
from creditbridge.store import Store
from creditbridge.store.models.base import age_seconds, utcnow
from creditbridge.store.models.credits import CreditResult
from creditbridge.store.models.registry import RegistrySubmission

CR = CreditResult.__table__
SUB = RegistrySubmission.__table__


def waiting(store: Store) -> dict[str, Any]:
    """`to_build`: pushed-role results the next `push` turns into a new version (no submission yet, or the
    latest carries another result_hash); `pending`: built, not sent; `sent`: sent, no answer yet. Each with the
    age of its oldest (evaluated_at, created_at, sent_at)."""
    now = utcnow()
    latest = aliased(SUB)
    newest = (select(func.max(latest.c.version)).where(
        latest.c.programme == CR.c.programme, latest.c.teacher == CR.c.teacher, latest.c.role == CR.c.role,
        latest.c.year == CR.c.year).scalar_subquery())
    same = select(SUB.c.id).where(and_(
        SUB.c.programme == CR.c.programme, SUB.c.teacher == CR.c.teacher, SUB.c.role == CR.c.role,
        SUB.c.year == CR.c.year, SUB.c.version == newest, SUB.c.action == "submit",
        SUB.c.result_hash == CR.c.result_hash))
    with store.session() as s:
        to_build, build_oldest = s.execute(select(func.count(), func.min(CR.c.evaluated_at)).where(
            CR.c.role.in_(PUSHED_ROLES), ~same.exists())).one()
        pending, pending_oldest = s.execute(select(func.count(), func.min(SUB.c.created_at))
                                            .where(SUB.c.state == "pending")).one()
        sent, sent_oldest = s.execute(select(func.count(), func.min(SUB.c.sent_at)).where(SUB.c.state == "sent")).one()
    return {"to_build": to_build, "to_build_oldest_age_seconds": age_seconds(build_oldest, now),
            "pending": pending, "pending_oldest_age_seconds": age_seconds(pending_oldest, now),
            "sent": sent, "sent_oldest_age_seconds": age_seconds(sent_oldest, now)}


def status(store: Store) -> dict[str, Any]:
    """`credits status` (and the same figures in `intake status`): teachers waiting for evaluation, results
    waiting for push (not yet in the outbox, or built and not sent), each with the age of the oldest."""
    evaluation = evaluation_waiting(store)
    push = waiting(store)
    ages = [a for a in (push["to_build_oldest_age_seconds"], push["pending_oldest_age_seconds"]) if a is not None]
    return {"waiting_evaluation": evaluation["teachers"],
            "waiting_evaluation_oldest_age_seconds": evaluation["oldest_age_seconds"],
            "waiting_push": push["to_build"] + push["pending"],
            "waiting_push_oldest_age_seconds": max(ages) if ages else None,
            "evaluation": evaluation, "push": push}
