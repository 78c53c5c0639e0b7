"""The continuous worker (`creditbridge worker`, and a child of `creditbridge run` when pipeline.mode is
"continuous"): takes marked teachers as they come, evaluates them in small batches, builds their outbox rows
and pushes changed results in micro-batches. Which steps a round runs, and in which order, is pipeline.py's
declaration (CONTINUOUS: evaluate, then push); the micro-batch form of each is here. docs/scheduler.md explains the
design; in short:

- The queue is the database's own: the `credit_mark` rows the triggers of migration 0008 append, taken with
  `SELECT ... FOR UPDATE SKIP LOCKED` (rows another worker holds are passed over, not waited for), and on
  PostgreSQL `LISTEN creditbridge_marks` (the NOTIFY of migration 0009) to wake an idle worker at once.
  SQLite ignores FOR UPDATE; its single writer and the flow lock file make the same code one worker at a time.
- Claims per teacher: a transaction-level advisory lock per (programme, teacher), taken with
  `pg_try_advisory_xact_lock` by the evaluation batch and by the push micro-batch alike, so two workers never
  evaluate or push one teacher at once; the school-admin result of a school is written under a lock per school.
- One transaction per batch: the claimed marks are deleted, the results written and the outbox rows built in
  the transaction that holds the claims. A worker killed mid-batch leaves nothing half-done: PostgreSQL ends the
  transaction, drops its locks and rolls back; another worker takes the same marks.
- Push micro-batch: the open submissions are locked (`SKIP LOCKED`), marked sent, sent and answered in one
  transaction. Killed while sending: the rows are open again and the next worker resends them under the same
  idempotency keys; the registry answers as before and records nothing twice.
- Deliveries the receivers left pending (queue full, a failed background batch, a dead receiver) are swept up
  once older than pipeline.pending_after_seconds, by the inbox's own `process_pending` (its chunks are claimed
  with SKIP LOCKED and a delivery's state is checked again under the lock, so a receiver or another worker
  taking the same delivery at once never makes a second record).
- Beside whole runs: every worker batch holds the `evaluate` and `push` flow locks (store/locks.py) in
  shared mode, so `credits evaluate` and `push` (which take them exclusively) never run beside a batch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from creditbridge import CreditbridgeError
from creditbridge.connector.registry import RegistryError, RegistryTarget, load_target
from creditbridge.mappings import marks
from creditbridge.mappings.fingerprint import EVALUATOR_VERSION
from creditbridge.mappings.read import known_programmes
from creditbridge.mappings.service import evaluate_teachers, start_continuous_run
from creditbridge.outbox.build import build
from creditbridge.outbox.service import push_claimed
from creditbridge.pipeline import CONTINUOUS, EVALUATE, PUSH, StepInput
from creditbridge.programmes import Programme, builtin_rule_path, load_programme
from creditbridge.records import mask_id_numbers
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.locks import FlowBusy, flow_lock, lock_key
from creditbridge.store.models.base import utcnow
from creditbridge.webhooks.processing import process_pending

log = logging.getLogger(__name__)

CHANNEL = "creditbridge_marks"  # migration 0009's NOTIFY channel
CM = marks.CM
# The keys store/locks.py's flow_lock takes exclusively for `credits evaluate` and `push`.
EVALUATE_KEY = lock_key("creditbridge.flow.evaluate")
PUSH_KEY = lock_key("creditbridge.flow.push")
_TRY_SHARED = text("SELECT pg_try_advisory_xact_lock_shared(:k)")
# Each key tried once, in the order given (sorted: two workers never wait on each other in a cycle).
_TRY_KEYS = text("SELECT k FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS u(k, n) "
                 "WHERE pg_try_advisory_xact_lock(k) ORDER BY n")
# Left-pending deliveries one round takes (one transaction, as a receiver's background batch): bounded so a
# backlog of hours does not hold up the evaluation and push of what arrives meanwhile.
SWEEP_BATCH = 1000
_LOCK_KEYS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS u(k)")


def teacher_key(programme: str, teacher: str) -> int:
    return lock_key(f"creditbridge.teacher.{programme}.{teacher}")


def school_key(programme: str, school: str) -> int:
    return lock_key(f"creditbridge.school.{programme}.{school}")


class RegistryUnavailable(CreditbridgeError):
    """The registry did not take the micro-batch; the worker pushes again after a backoff."""


class Worker:
    """One worker: `run()` until `stop()`; `round()` is one micro-batch of each continuous step (evaluate, push)."""

    def __init__(self, settings: Settings, store: Store, *, target: RegistryTarget | None = None) -> None:
        self.settings, self.store = settings, store
        self.conf = settings.pipeline
        self.pg = store.is_postgres
        self._target = target
        self._own_target = target is None
        self.programmes: dict[str, Programme] = {}
        self.run_ids: dict[str, int] = {}
        self.totals: Counter[str] = Counter()
        self._stop = threading.Event()
        self._next_check = 0.0
        self._push_failures = 0
        self._push_after = 0.0
        self._listener: Any = None
        self._queries: dict[str, dict[Any, Any]] = {}  # per programme: evaluate_teachers' compiled queries
        # A step declared continuous in pipeline.py that the worker cannot run as a micro-batch is a bug: said at once.
        missing = [step.key for step in CONTINUOUS if step.key not in self._batches()]
        if missing:
            raise CreditbridgeError(f"the worker has no micro-batch form of the pipeline's step(s) {missing}")

    # --- the loop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the batch in hand, then return from run()."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> dict[str, int]:
        failures = 0
        log.info("worker started (%s store, batches of %d teachers, pushes of %d)",
                 "PostgreSQL" if self.pg else "SQLite", self.conf.batch_teachers, self.conf.push_batch)
        try:
            while not self._stop.is_set():
                try:
                    busy = self.round()
                    failures = 0
                except (DBAPIError, OSError) as e:
                    # The database went away (restart, failover, network): drop every pooled connection, wait,
                    # and start again; what was in hand was rolled back with the transaction.
                    failures += 1
                    wait = self._backoff(failures)
                    log.warning("worker: database error (%s); retrying in %.1fs", _short(e), wait)
                    self._close_listener()
                    self.store.engine.dispose()
                    self._stop.wait(wait)
                    continue
                except CreditbridgeError as e:  # a refused rule file, a lock that cannot be taken: said, retried
                    failures += 1
                    wait = self._backoff(failures)
                    log.error("worker: %s; retrying in %.1fs", _short(e), wait)
                    self._stop.wait(wait)
                    continue
                if not busy:
                    self._idle()
        finally:
            self._close_listener()
            if self._own_target and self._target is not None:
                self._target.close()
            log.info("worker stopped: %s", ", ".join(f"{k}={v}" for k, v in sorted(self.totals.items())) or "idle")
        return dict(self.totals)

    def round(self) -> bool:
        """The deliveries left pending, then one micro-batch of each of the pipeline's continuous steps, in the
        pipeline's order (pipeline.CONTINUOUS: evaluate, then push). True when there may be more to do at once."""
        now = time.monotonic()
        if now >= self._next_check:
            self.check_programmes()
            self._next_check = time.monotonic() + self.conf.check_seconds
        done = self.sweep_inbox()
        batches = self._batches()
        for step in CONTINUOUS:
            done += batches[step.key]()
        return done > 0

    def _batches(self) -> dict[str, Callable[[], int]]:
        """Each continuous step's micro-batch form, by the step's key: how many teachers or submissions it took."""
        return {EVALUATE.key: self.evaluate_batch, PUSH.key: self._push_unless_backing_off}

    def _push_unless_backing_off(self) -> int:
        if time.monotonic() < self._push_after:
            return 0
        try:
            pushed = self.push_batch()
        except (RegistryError, RegistryUnavailable) as e:
            self._push_failures += 1
            wait = self._backoff(self._push_failures)
            self._push_after = time.monotonic() + wait
            log.warning("worker: registry did not take the batch (%s); pushing again in %.1fs", _short(e), wait)
            return 0
        self._push_failures = 0
        return pushed

    def _backoff(self, failures: int) -> float:
        return min(self.conf.max_backoff_seconds, self.conf.backoff_seconds * 2 ** (failures - 1))

    def _idle(self) -> None:
        """Wait for a NOTIFY (PostgreSQL), the poll interval, the end of a push backoff, or stop()."""
        wait = self.conf.poll_seconds
        if self._push_after > time.monotonic():
            wait = min(wait, self._push_after - time.monotonic())
        if self.pg:
            try:
                listener = self._listen()
                # psycopg's notifies() returns after one notification or the timeout; stop() is seen within `wait`.
                for _n in listener.notifies(timeout=max(0.01, wait), stop_after=1):
                    pass
            except (psycopg.Error, DBAPIError, OSError) as e:
                # the database went away while idle: listen again on a new connection after a pause
                log.warning("worker: listening for changes failed (%s); polling", _short(e))
                self._close_listener()
                self._stop.wait(wait)
        else:
            self._stop.wait(wait)

    def _listen(self) -> Any:
        if self._listener is None:
            raw = self.store.engine.raw_connection()
            conn = raw.driver_connection
            conn.autocommit = True  # type: ignore[union-attr]
            conn.execute(f"LISTEN {CHANNEL}")  # type: ignore[union-attr]
            self._listener = (raw, conn)
        return self._listener[1]

    def _close_listener(self) -> None:
        if self._listener is not None:
            raw, _conn = self._listener
            self._listener = None
            with contextlib.suppress(Exception):
                raw.invalidate()  # never back to the pool in LISTEN state

    # --- programmes ------------------------------------------------------------------------------------------

    def check_programmes(self) -> None:
        """Load the rule files of the store's programmes, and run what a batch of teachers cannot do: a whole
        programme (no complete run yet, rule file or catalog changed, evaluator version) or every teacher of a
        school (a topic change), through the incremental `credits evaluate` of that programme only."""
        for code in known_programmes(self.store, self.settings):
            if builtin_rule_path(code) is None:
                continue  # no rule file: `credits evaluate` does not evaluate it either
            prog = self.programmes[code] = load_programme(code)
            reason = marks.full_reason(self.store, prog, EVALUATOR_VERSION)
            with self.store.engine.connect() as conn:
                schools = conn.execute(select(CM.c.id).where(CM.c.programme == code, CM.c.teacher.is_(None))
                                       .limit(1)).first() is not None
            if reason is None and not schools:
                continue
            log.info("worker: evaluating %s as `credits evaluate` does (%s)", code, reason or "school topics changed")
            counts = EVALUATE.run(self.settings, self.store, StepInput(programme=code, incremental=True, wait=True))
            with flow_lock(self.store, "push", "worker (outbox build)", wait=True), self.store.session() as s:
                built = build(s, provider=self.settings.registry.provider, programme=code)
            self.totals["programme_runs"] += 1
            self.totals["built"] += built.created
            log.info("worker: %s evaluated (%s), %d outbox row(s) built", code,
                     counts.programmes[code].mode, built.created)

    # --- deliveries left pending ------------------------------------------------------------------------------

    def sweep_inbox(self) -> int:
        """Turn up to SWEEP_BATCH deliveries pending for longer than pipeline.pending_after_seconds into learning
        records (their teachers are marked by the triggers, so this round's evaluation batch takes them).
        Returns how many deliveries it took. Parked deliveries are left to the sync jobs and `intake replay`:
        they wait for a teacher or course that only a sync can create."""
        cutoff = utcnow() - timedelta(seconds=self.conf.pending_after_seconds)
        got = process_pending(self.settings, self.store, include_parked=False, received_before=cutoff,
                              limit=SWEEP_BATCH, chunk_size=SWEEP_BATCH)
        taken = got.processed + got.parked + got.rejected
        if taken:
            self.totals["inbox_processed"] += got.processed
            self.totals["inbox_records"] += got.records
            self.totals["inbox_parked"] += got.parked
            self.totals["inbox_rejected"] += got.rejected
            log.info("worker: %d delivery(ies) left pending over %gs taken from the inbox: %d record(s), "
                     "%d parked, %d rejected", taken, self.conf.pending_after_seconds, got.records,
                     got.parked, got.rejected)
        return taken

    # --- evaluation ------------------------------------------------------------------------------------------

    def evaluate_batch(self) -> int:
        """Claim up to batch_teachers marked teachers, evaluate them, delete their marks and build their
        outbox rows, in one transaction. Returns how many teachers were evaluated."""
        if not self.programmes:
            return 0
        try:
            with self._flow_locks(), self.store.engine.connect() as conn, conn.begin():
                if not self._shared(conn, EVALUATE_KEY) or not self._shared(conn, PUSH_KEY):
                    return 0  # a whole run (`credits evaluate`, `push`) is under way: wait for it
                rows = conn.execute(
                    select(CM.c.id, CM.c.programme, CM.c.teacher, CM.c.school)
                    .where(CM.c.teacher.is_not(None), CM.c.programme.in_(sorted(self.programmes)))
                    .order_by(CM.c.id).limit(self.conf.batch_teachers)
                    .with_for_update(skip_locked=True)).all()
                if not rows:
                    return 0
                granted = self._claim(conn, {(r.programme, r.teacher) for r in rows})
                done = [r for r in rows if (r.programme, r.teacher) in granted]
                if not done:
                    return 0
                evaluated = 0
                for code in sorted({r.programme for r in done}):
                    evaluated += self._evaluate(conn, code, [r for r in done if r.programme == code])
                marks.delete(conn, [r.id for r in done])
                return evaluated
        except FlowBusy:
            return 0

    def _evaluate(self, conn: Connection, code: str, rows: list[Any]) -> int:
        prog = self.programmes[code]
        teachers = sorted({r.teacher for r in rows})
        counts = evaluate_teachers(conn, prog, self._run_id(prog), teachers,
                                   {r.school for r in rows if r.school is not None},
                                   claim_schools=lambda schools: self._lock_schools(conn, code, schools),
                                   cache=self._queries.setdefault(code, {}))
        with Session(bind=conn) as s:
            built = build(s, provider=self.settings.registry.provider, programme=code, for_teachers=teachers)
            s.flush()
        for k in ("evaluated", "changed"):
            self.totals[k] += counts[k]
        self.totals["built"] += built.created
        log.debug("worker: %s: %d teacher(s) evaluated, %d changed, %d outbox row(s)", code, counts["evaluated"],
                  counts["changed"], built.created)
        return len(teachers)

    def _run_id(self, prog: Programme) -> int:
        run_id = self.run_ids.get(prog.id)
        if run_id is None:
            with self.store.engine.connect() as conn, conn.begin():
                run_id = self.run_ids[prog.id] = start_continuous_run(conn, prog)
        return run_id

    # --- push ------------------------------------------------------------------------------------------------

    def push_batch(self) -> int:
        """One micro-batch of open submissions; returns how many were sent."""
        if self._target is None:
            self._target = load_target(self.settings.registry.target, self.settings.registry)
        target = self._target
        size = max(1, min(self.conf.push_batch, self.settings.registry.batch_size, target.max_batch))
        try:
            with self._flow_locks(evaluate=False), self.store.sessions() as s:
                conn = s.connection()
                if not self._shared(conn, PUSH_KEY):
                    return 0
                counts = push_claimed(s, target, self.settings.registry.target, size,
                                      lambda pairs: self._claim(conn, pairs))
                if counts is None:
                    s.rollback()
                    raise RegistryUnavailable("registry unavailable")
                s.commit()
        except FlowBusy:
            return 0
        for k, v in counts.items():
            self.totals[k] += v
        return counts["sent"]

    # --- locks -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flow_locks(self, evaluate: bool = True) -> Iterator[None]:
        """SQLite: the flow lock files, exclusively (one process writes at a time there anyway). PostgreSQL:
        nothing here; the batch's transaction takes them shared (`_shared`)."""
        if self.pg:
            yield
            return
        with contextlib.ExitStack() as stack:
            if evaluate:
                stack.enter_context(flow_lock(self.store, "evaluate", "worker"))
            stack.enter_context(flow_lock(self.store, "push", "worker"))
            yield

    def _shared(self, conn: Connection, key: int) -> bool:
        if not self.pg:
            return True
        return bool(conn.execute(_TRY_SHARED, {"k": key}).scalar())

    def _claim(self, conn: Connection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (programme, teacher) pairs this transaction now holds; the others belong to another worker."""
        if not self.pg:
            return set(pairs)
        by_key = {teacher_key(p, t): (p, t) for p, t in pairs}
        got = conn.execute(_TRY_KEYS, {"keys": sorted(by_key)}).scalars().all()
        return {by_key[k] for k in got}

    def _lock_schools(self, conn: Connection, code: str, schools: list[str]) -> None:
        """Wait for the schools' locks (sorted, so never a cycle): the admin result is then computed from every
        committed teacher result, and the last writer has seen them all."""
        if self.pg and schools:
            conn.execute(_LOCK_KEYS, {"keys": sorted(school_key(code, s) for s in schools)})


def _short(e: BaseException) -> str:
    text_ = str(getattr(e, "orig", None) or e).strip().splitlines()
    return mask_id_numbers(f"{type(e).__name__}: {text_[0] if text_ else ''}")[:300]
