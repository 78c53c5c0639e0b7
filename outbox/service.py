"""`push`: build the outbox, then send it in batches until each submission is decided.

Crash safety: a batch is marked `sent` (committed) BEFORE it goes out and keeps its idempotency keys,
so after a crash between sending and recording the answer the next push resends it with the same
keys, and the registry answers as before instead of recording twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, defer

from creditbridge.connector.registry import Outcome, RegistryError, RegistryTarget, Submission, load_target
from creditbridge.connector.retry import RetryPolicy
from creditbridge.outbox.build import AuditTrail, BuildCounts, build
from creditbridge.records import mask_id_number, mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.locks import flow_lock
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.registry import RegistrySubmission

log = logging.getLogger(__name__)
OPEN_STATES = ("pending", "sent")
# The longest wait between resends of a batch, Retry-After included.
MAX_WAIT_SECONDS = 60.0


def _open_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RegistrySubmission)
                          .where(RegistrySubmission.state.in_(OPEN_STATES))) or 0


SUBMISSIONS = RegistrySubmission.__table__


def _claim(store: Store, after_id: int, limit: int, target_name: str) -> tuple[list[Submission], int]:
    """Mark the next batch `sent` and commit, before anything leaves the machine."""
    t = SUBMISSIONS
    with store.session() as s:
        # Core rows and one UPDATE: building ORM objects for each batch was most of a push's cost.
        rows = s.execute(select(*_CLAIM_COLS).where(t.c.state.in_(OPEN_STATES), t.c.id > after_id)
                         .order_by(t.c.id).limit(limit)).all()
        if not rows:
            return [], after_id
        return _mark_sent(s, rows, target_name), rows[-1].id


_CLAIM_COLS = (SUBMISSIONS.c.id, SUBMISSIONS.c.state, SUBMISSIONS.c.idempotency_key, SUBMISSIONS.c.action,
               SUBMISSIONS.c.payload, SUBMISSIONS.c.supersedes_id, SUBMISSIONS.c.programme, SUBMISSIONS.c.teacher)


def _mark_sent(s: Session, rows: Sequence[Any], target_name: str) -> list[Submission]:
    """Mark these rows `sent` (with an audit row each) in the session's transaction; their submissions."""
    t = SUBMISSIONS
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
    return [Submission(key=r.idempotency_key, action=r.action, record=r.payload,
                       supersedes=sup_keys.get(r.supersedes_id)) for r in rows]


def _record(store: Store, outcomes: Sequence[Outcome]) -> dict[str, int]:
    with store.session() as s:
        return _record_in(s, outcomes)


def _record_in(s: Session, outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Record the registry's answers in the session's transaction."""
    counts = {"acknowledged": 0, "rejected": 0, "transient": 0}
    by_key = {o.key: o for o in outcomes}
    t = SUBMISSIONS
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


def _send(target: RegistryTarget, batch: list[Submission], policy: RetryPolicy,
          sleep: Callable[[float], None]) -> list[Outcome] | None:
    """Send one batch; resend it (same keys) on transient failures only. None: gave up for now."""
    try:
        # safe: the batch and each record carry their idempotency key, so a resend is answered, not recorded twice.
        return policy.call(lambda: target.submit(batch), safe=True, sleep=sleep,
                           what=f"registry batch of {len(batch)}")
    except RegistryError as e:
        if not e.retryable:
            raise
        log.warning("registry still unavailable after %d attempts: %s", policy.retries + 1, e)
        return None


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: `sent` (submissions sent this run), `acknowledged`, `rejected` (this run), `pending`
    (still undecided afterwards), `built` (what the outbox build added), the registry `target`, and `gave_up`
    (the registry stayed unavailable: the rest is resent with the same keys next time).

    A dry run (`dry_run`) sends nothing: `pending` is what would be sent, `built` what the build would add."""

    pending: int
    built: BuildCounts
    target: str
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    gave_up: bool = False
    dry_run: bool = False

    @property
    def would_send(self) -> int:
        return self.pending

    def as_json(self) -> dict[str, Any]:
        # The keys and order `push --json` prints and the scheduler's ledger stores; a dry run has its own.
        if self.dry_run:
            return {"dry_run": True, "sent": 0, "acknowledged": 0, "rejected": 0, "pending": self.pending,
                    "would_send": self.would_send, "built": self.built.as_json(), "target": self.target}
        return {"sent": self.sent, "acknowledged": self.acknowledged, "rejected": self.rejected,
                "pending": self.pending, "built": self.built.as_json(), "target": self.target,
                "gave_up": self.gave_up}


def push(settings: Settings, store: Store, *, dry_run: bool = False, target: RegistryTarget | None = None,
         programme: str | None = None, sleep: Callable[[float], None] = time.sleep,
         on_batch: Callable[[int], None] | None = None, wait: bool = False) -> PushResult:
    """Push every changed credit result to the configured registry target (see PushResult for what it returns).

    One push at a time per store (store/locks.py): a second one stops at once with FlowBusy, or with `wait`
    waits for the first. Two builds at once would both add the same new versions. A dry run takes no lock."""
    reg = settings.registry
    if dry_run:
        with store.sessions() as s:
            built = build(s, provider=reg.provider, programme=programme)
            pending = _open_count(s)
            s.rollback()
        return PushResult(pending=pending, built=built, target=reg.target, dry_run=True)
    with flow_lock(store, "push", "push", wait=wait):
        return _push(settings, store, target=target, programme=programme, sleep=sleep, on_batch=on_batch)


def _push(settings: Settings, store: Store, *, target: RegistryTarget | None, programme: str | None,
          sleep: Callable[[float], None], on_batch: Callable[[int], None] | None) -> PushResult:
    reg = settings.registry
    with store.session() as s:
        built = build(s, provider=reg.provider, programme=programme)
    own_target = target is None
    tgt = target if target is not None else load_target(reg.target, reg)
    size = max(1, min(reg.batch_size, tgt.max_batch))
    policy = RetryPolicy(retries=reg.retries, backoff_seconds=reg.backoff_seconds,
                         max_backoff_seconds=MAX_WAIT_SECONDS)
    totals = {"sent": 0, "acknowledged": 0, "rejected": 0, "transient": 0}
    gave_up = False
    try:
        after = 0
        while True:
            batch, after = _claim(store, after, size, reg.target)
            if not batch:
                break
            totals["sent"] += len(batch)
            outcomes = _send(tgt, batch, policy, sleep)
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
    return PushResult(pending=pending, built=built, target=reg.target, sent=totals["sent"],
                      acknowledged=totals["acknowledged"], rejected=totals["rejected"], gave_up=gave_up)


def push_claimed(s: Session, target: RegistryTarget, target_name: str, limit: int,
                 claim: Callable[[set[tuple[str, str]]], set[tuple[str, str]]]) -> dict[str, int] | None:
    """One micro-batch of a continuous worker (runner/worker.py), all in the session's transaction, which the
    caller commits: the oldest open submissions not locked by another worker (`FOR UPDATE SKIP LOCKED`), of the
    (programme, teacher) pairs `claim` grants, are marked sent, sent, and their answers recorded. A worker
    killed meanwhile holds nothing: its transaction and locks end, the rows are open again, and the next worker
    resends them under the same idempotency keys (the registry answers as before). None: the registry is
    unavailable (the caller rolls back and backs off)."""
    t = SUBMISSIONS
    rows = s.execute(select(*_CLAIM_COLS).where(t.c.state.in_(OPEN_STATES)).order_by(t.c.id).limit(limit)
                     .with_for_update(skip_locked=True, of=t)).all()
    if not rows:
        return {"sent": 0, "acknowledged": 0, "rejected": 0, "transient": 0}
    granted = claim({(r.programme, r.teacher) for r in rows})
    rows = [r for r in rows if (r.programme, r.teacher) in granted]
    if not rows:
        return {"sent": 0, "acknowledged": 0, "rejected": 0, "transient": 0}
    batch = _mark_sent(s, rows, target_name)
    # No resend here: a retry with backoff would hold the claims; the worker backs off outside its transaction.
    outcomes = _send(target, batch, RetryPolicy(retries=0), time.sleep)
    if outcomes is None:
        return None
    return {"sent": len(batch), **_record_in(s, outcomes)}


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
