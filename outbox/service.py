"""`push`: build the outbox, then send it in batches until each submission is decided.

Crash safety: a batch is marked `sent` (committed) BEFORE it goes out and keeps its idempotency keys,
so after a crash between sending and recording the answer the next push resends it with the same
keys, and the registry answers as before instead of recording twice."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, defer

from creditbridge.connector.registry import Outcome, RegistryError, RegistryTarget, Submission, load_target
from creditbridge.outbox.build import AuditTrail, build
from creditbridge.records import mask_id_number, mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.locks import flow_lock
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.registry import RegistrySubmission

log = logging.getLogger(__name__)
OPEN_STATES = ("pending", "sent")
MAX_WAIT_SECONDS = 60.0


def _backoff(attempt: int, base: float, retry_after: float | None) -> float:
    # Full jitter around an exponential step, but never sooner than the registry asked.
    step = base * (2 ** attempt) * random.uniform(0.5, 1.5)
    return min(MAX_WAIT_SECONDS, max(step, retry_after or 0.0))


def _open_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RegistrySubmission)
                          .where(RegistrySubmission.state.in_(OPEN_STATES))) or 0


SUBMISSIONS = RegistrySubmission.__table__


def _claim(store: Store, after_id: int, limit: int, target_name: str) -> tuple[list[Submission], int]:
    """Mark the next batch `sent` and commit, before anything leaves the machine."""
    t = SUBMISSIONS
    with store.session() as s:
        # Core rows and one UPDATE: building ORM objects for each batch was most of a push's cost.
        rows = s.execute(select(t.c.id, t.c.state, t.c.idempotency_key, t.c.action, t.c.payload, t.c.supersedes_id)
                         .where(t.c.state.in_(OPEN_STATES), t.c.id > after_id)
                         .order_by(t.c.id).limit(limit)).all()
        if not rows:
            return [], after_id
        sup_ids = {r.supersedes_id for r in rows if r.supersedes_id}
        sup_keys = dict(s.execute(select(t.c.id, t.c.idempotency_key)
                                  .where(t.c.id.in_(sup_ids))).all()) if sup_ids else {}
        s.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                  .values(state="sent", attempts=t.c.attempts + 1, sent_at=utcnow(), target=target_name))
        trail = AuditTrail()
        for r in rows:
            if r.state == "pending":
                trail.add(r.id, "sent", "sent", None, "pending")
        trail.write(s)
        batch = [Submission(key=r.idempotency_key, action=r.action, record=r.payload,
                            supersedes=sup_keys.get(r.supersedes_id)) for r in rows]
        return batch, rows[-1].id


def _record(store: Store, outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = {"acknowledged": 0, "rejected": 0, "transient": 0}
    by_key = {o.key: o for o in outcomes}
    t = SUBMISSIONS
    with store.session() as s:
        # The payload is not needed to record an answer: leave it unread.
        rows = s.execute(select(t.c.id, t.c.idempotency_key, t.c.state, t.c.programme, t.c.teacher, t.c.version,
                                t.c.action, t.c.supersedes_id)
                         .where(t.c.idempotency_key.in_(list(by_key)))).all()
        now = utcnow()
        trail = AuditTrail()
        decided: list[dict[str, Any]] = []
        supersede: dict[int, Any] = {}
        for r in rows:
            o = by_key[r.idempotency_key]
            counts[o.status] += 1
            if o.status == "transient" or r.state != "sent":
                continue  # undecided, or already decided by a concurrent push
            decided.append({"b_id": r.id, "b_state": o.status, "b_reason": o.reason, "b_registry_id": o.registry_id})
            trail.add(r.id, o.status, o.status, o.reason or o.registry_id, "sent")
            if o.status == "rejected":
                log.warning("registry rejected %s/%s v%d: %s", r.programme, mask_id_number(r.teacher),
                            r.version, mask_id_numbers(o.reason or ""))
            if o.status == "acknowledged" and r.supersedes_id:
                supersede[r.supersedes_id] = r
        if decided:
            # One executemany; `state = 'sent'` keeps an answer from overwriting a concurrent decision.
            s.execute(update(t).where(t.c.id == bindparam("b_id"), t.c.state == "sent")
                      .values(state=bindparam("b_state"), decided_at=now, reason=bindparam("b_reason"),
                              registry_id=bindparam("b_registry_id")), decided)
        if supersede:
            # Read after the updates above, so an earlier version acknowledged in this same batch is seen
            # as acknowledged (and superseded), as the registry now holds it.
            earlier_rows = s.execute(select(t.c.id, t.c.state).where(
                t.c.id.in_(list(supersede)), t.c.state.in_(("acknowledged", "sent")))).all()
            by_new_state: dict[str, list[int]] = {}
            for earlier in earlier_rows:
                later = supersede[earlier.id]
                new_state = "voided" if later.action == "void" else "superseded"
                by_new_state.setdefault(new_state, []).append(earlier.id)
                trail.add(earlier.id, new_state, new_state, f"by version {later.version}", earlier.state)
            for new_state, ids in by_new_state.items():
                s.execute(update(t).where(t.c.id.in_(ids)).values(state=new_state, decided_at=now))
        trail.write(s)
    return counts


def _send(target: RegistryTarget, batch: list[Submission], retries: int, backoff: float,
          sleep: Callable[[float], None]) -> list[Outcome] | None:
    """Send one batch; resend it (same keys) on transient failures only. None: gave up for now."""
    for attempt in range(retries + 1):
        try:
            return target.submit(batch)
        except RegistryError as e:
            if not e.retryable:
                raise
            if attempt == retries:
                log.warning("registry still unavailable after %d attempts: %s", attempt + 1, e)
                return None
            wait = _backoff(attempt, backoff, e.retry_after)
            log.info("registry unavailable (%s); resending batch of %d in %.2fs", e, len(batch), wait)
            sleep(wait)
    return None


def push(settings: Settings, store: Store, *, dry_run: bool = False, target: RegistryTarget | None = None,
         programme: str | None = None, sleep: Callable[[float], None] = time.sleep,
         on_batch: Callable[[int], None] | None = None, wait: bool = False) -> dict[str, Any]:
    """Push every changed credit result to the configured registry target.

    Returns counts: `sent` (submissions sent this run), `acknowledged`, `rejected` (this run),
    `pending` (still undecided afterwards), and `built` (what the outbox build added).

    One push at a time per store (store/locks.py): a second one stops at once with FlowBusy, or with `wait`
    waits for the first. Two builds at once would both add the same new versions. A dry run takes no lock."""
    reg = settings.registry
    if dry_run:
        with store.sessions() as s:
            built = build(s, provider=reg.provider, programme=programme)
            pending = _open_count(s)
            s.rollback()
        return {"dry_run": True, "sent": 0, "acknowledged": 0, "rejected": 0, "pending": pending,
                "would_send": pending, "built": built.as_json(), "target": reg.target}
    with flow_lock(store, "push", "push", wait=wait):
        return _push(settings, store, target=target, programme=programme, sleep=sleep, on_batch=on_batch)


def _push(settings: Settings, store: Store, *, target: RegistryTarget | None, programme: str | None,
          sleep: Callable[[float], None], on_batch: Callable[[int], None] | None) -> dict[str, Any]:
    reg = settings.registry
    with store.session() as s:
        built = build(s, provider=reg.provider, programme=programme)
    own_target = target is None
    tgt = target if target is not None else load_target(reg.target, reg)
    size = max(1, min(reg.batch_size, tgt.max_batch))
    totals = {"sent": 0, "acknowledged": 0, "rejected": 0, "transient": 0}
    gave_up = False
    try:
        after = 0
        while True:
            batch, after = _claim(store, after, size, reg.target)
            if not batch:
                break
            totals["sent"] += len(batch)
            outcomes = _send(tgt, batch, reg.retries, reg.backoff_seconds, sleep)
            if outcomes is None:
                gave_up = True  # keep order: a later version must not overtake one still in flight
                break
            for k, v in _record(store, outcomes).items():
                totals[k] += v
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        if own_target:
            tgt.close()
    with store.session() as s:
        pending = _open_count(s)
    return {"sent": totals["sent"], "acknowledged": totals["acknowledged"], "rejected": totals["rejected"],
            "pending": pending, "built": built.as_json(), "target": reg.target, "gave_up": gave_up}


def summary(store: Store, *, programme: str | None = None) -> dict[str, Any]:
    """What the report shows: submissions by state, and the rejected and still-open ones (latest
    version per teacher only). Teacher values are full ID numbers: mask them before logging."""
    with store.session() as s:
        q = select(RegistrySubmission).options(defer(RegistrySubmission.payload))
        if programme:
            q = q.where(RegistrySubmission.programme == programme)
        by_state: dict[str, int] = {}
        latest: dict[tuple[str, str, str, int], RegistrySubmission] = {}
        for r in s.scalars(q.order_by(RegistrySubmission.version)):
            by_state[r.state] = by_state.get(r.state, 0) + 1
            latest[(r.programme, r.teacher, r.role, r.year)] = r

        def row(r: RegistrySubmission) -> dict[str, Any]:
            return {"programme": r.programme, "teacher": r.teacher, "role": r.role, "year": r.year,
                    "version": r.version, "action": r.action, "state": r.state, "reason": r.reason,
                    "attempts": r.attempts, "sent_at": r.sent_at, "decided_at": r.decided_at}

        rejected = [row(r) for r in latest.values() if r.state == "rejected"]
        open_ = [row(r) for r in latest.values() if r.state in OPEN_STATES]
    return {"by_state": by_state, "rejected": rejected, "pending": open_}
