"""Turn credit results into outbox submissions: only results whose outcome changed get a new version.

- no submission yet                      -> version 1
- result_hash differs from the latest    -> version n+1, superseding what the registry may hold
- result gone (withdrawn)                -> a void submission for what the registry may hold
An unsent (pending) version that is overtaken is never sent: it is marked superseded or voided at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, defer

from creditbridge.outbox.payload import build_record, idempotency_key
from creditbridge.programmes import ProgrammeFacts, programme_facts
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.credits import CreditResult
from creditbridge.store.models.registry import RegistryAudit, RegistrySubmission

# Roles whose results are credit records of a person. Host and school-admin scores are assessments of
# a workshop or a school, kept in the report, not registered as anybody's credits.
PUSHED_ROLES = ("teacher",)
LIVE_STATES = ("acknowledged", "sent")


@dataclass
class BuildCounts:
    created: int = 0
    corrections: int = 0
    voids: int = 0
    unchanged: int = 0
    dropped_unsent: int = 0
    programmes: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, int]:
        return {"created": self.created, "corrections": self.corrections, "voids": self.voids,
                "unchanged": self.unchanged, "dropped_unsent": self.dropped_unsent}


class AuditTrail:
    """Audit rows gathered during a unit of work and written in one bulk insert at its end (one INSERT
    per state change would dominate a push of thousands of records). A submission is given as its id,
    or as an ORM object whose id is only known after the flush."""

    def __init__(self) -> None:
        self._pending: list[tuple[RegistrySubmission | int, str, str | None, str, str | None]] = []

    def add(self, sub: RegistrySubmission | int, event: str, to_state: str, detail: str | None = None,
            from_state: str | None = None) -> None:
        self._pending.append((sub, event, from_state, to_state, detail))

    def transition(self, sub: RegistrySubmission, to_state: str, event: str, detail: str | None) -> None:
        before = sub.state
        sub.state = to_state
        sub.decided_at = utcnow()
        self.add(sub, event, to_state, detail, before)

    def write(self, session: Session) -> None:
        if not self._pending:
            return
        session.flush()  # new submissions get their ids
        now = utcnow()
        # Core executemany on the table: the ORM bulk path costs several times more per row.
        session.execute(insert(RegistryAudit.__table__), [
            {"submission_id": sub if isinstance(sub, int) else sub.id, "event": event, "from_state": from_state,
             "to_state": to_state, "detail": detail, "at": now}
            for sub, event, from_state, to_state, detail in self._pending])
        self._pending.clear()


def build(session: Session, *, provider: str, programme: str | None = None,
          for_teachers: Collection[str] | None = None) -> BuildCounts:
    """`for_teachers`: only these people's results (a continuous worker's batch, whose teachers it has claimed);
    the rest of the outbox is not read."""
    table = CreditResult.__table__
    counts = BuildCounts()
    trail = AuditTrail()
    new_rows: list[dict[str, Any]] = []
    new_details: list[str] = []
    q = select(table).where(table.c.role.in_(PUSHED_ROLES))
    subq = select(RegistrySubmission).where(RegistrySubmission.role.in_(PUSHED_ROLES))
    if programme:
        q = q.where(table.c.programme == programme)
        subq = subq.where(RegistrySubmission.programme == programme)
    if for_teachers is not None:
        q = q.where(table.c.teacher.in_(list(for_teachers)))
        subq = subq.where(RegistrySubmission.teacher.in_(list(for_teachers)))
    results = {(r.programme, r.teacher, r.role, int(r.year)): r for r in session.execute(q)}

    history: dict[tuple[str, str, str, int], list[RegistrySubmission]] = {}
    # Payloads are only read for a void (loaded on access then); decoding all of them is most of the cost.
    for sub in session.scalars(subq.options(defer(RegistrySubmission.payload)).order_by(RegistrySubmission.version)):
        history.setdefault((sub.programme, sub.teacher, sub.role, sub.year), []).append(sub)

    teachers: dict[tuple[str, str], Any] = {}
    needed = {(k[0], k[1]) for k in results}
    if needed:
        tq = select(Teacher).where(Teacher.programme.in_({p for p, _ in needed}))
        if for_teachers is not None:
            tq = tq.where(Teacher.id_number.in_({t for _, t in needed}))
        for t in session.scalars(tq):
            teachers[(t.programme, t.id_number)] = t
    programmes: dict[str, ProgrammeFacts] = {}

    for key in sorted(set(results) | set(history)):
        prog_code, teacher, _role, _year = key
        subs = history.get(key, [])
        last = subs[-1] if subs else None
        live = next((s for s in reversed(subs) if s.action == "submit" and s.state in LIVE_STATES), None)
        result = results.get(key)
        if result is not None:
            if last is not None and last.action == "submit" and last.result_hash == result.result_hash:
                counts.unchanged += 1
                continue
            if prog_code not in programmes:
                programmes[prog_code] = programme_facts(prog_code)
            version = (last.version + 1) if last else 1
            record = build_record(result, teachers.get((prog_code, teacher)), programmes[prog_code],
                                  version, provider)
            supersedes = live
            if last is not None and last.state == "pending":
                trail.transition(last, "superseded", "superseded_unsent",
                            f"overtaken by version {version} before it was sent")
                counts.dropped_unsent += 1
            new_rows.append(_new(key, version, "submit", result.result_hash, record, supersedes))
            new_details.append(f"correction of version {supersedes.version}" if supersedes else "first version")
            counts.corrections += 1 if last is not None else 0
            counts.created += 1
        elif last is not None and last.action == "submit" and last.state not in ("voided", "superseded"):
            if last.state == "pending":
                trail.transition(last, "voided", "voided_unsent", "result withdrawn before it was sent")
                counts.dropped_unsent += 1
            if live is not None and live.state in LIVE_STATES:
                record = dict(live.payload, version=last.version + 1)
                new_rows.append(_new(key, last.version + 1, "void", None, record, live))
                new_details.append(f"void of version {live.version}: result withdrawn")
                counts.voids += 1
        counts.programmes.add(prog_code)
    if new_rows:
        # One Core executemany (batched INSERT .. RETURNING) instead of an ORM object per submission;
        # the ids come back in parameter order, so each audit row names its submission.
        sub_table = RegistrySubmission.__table__
        ids = session.execute(insert(sub_table).returning(sub_table.c.id, sort_by_parameter_order=True),
                              new_rows).scalars().all()
        for sub_id, detail in zip(ids, new_details, strict=True):
            trail.add(sub_id, "created", "pending", detail)
    trail.write(session)
    return counts


def _new(key: tuple[str, str, str, int], version: int, action: str, result_hash: str | None,
         record: dict[str, Any], supersedes: RegistrySubmission | None) -> dict[str, Any]:
    prog_code, teacher, role, year = key
    return {"programme": prog_code, "teacher": teacher, "role": role, "year": year, "version": version,
            "action": action, "idempotency_key": idempotency_key(prog_code, role, teacher, year, version),
            "result_hash": result_hash, "payload": record, "state": "pending", "attempts": 0,
            "supersedes_id": supersedes.id if supersedes else None}
