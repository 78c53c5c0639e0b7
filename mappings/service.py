"""Evaluating every teacher of a programme in the state store and storing the results: the orchestration.

A full run (`evaluate_store`, mode "all") evaluates the roster key range by key range (segments.py); an
incremental one evaluates the teachers marked since (marks.py) and the school-admin results of their schools;
the continuous worker evaluates its claimed teachers inside its own transaction (`evaluate_teachers`). Each
chunk's inputs are read by chunk_inputs.py, a person whose inputs' fingerprint is unchanged is not evaluated
again (fingerprint.py), and results are written by writer.py: one transaction per chunk, a result row always
whole. The stored results are read back through read.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, insert, select, update

from creditbridge.mappings import marks
from creditbridge.mappings.chunk_inputs import (
    TE,
    MarkedReader,
    RecordQuery,
    load_catalog,
    load_school_topics,
    people_cols,
)
from creditbridge.mappings.evaluate import Evaluation, Rules, SchoolStats
from creditbridge.mappings.fingerprint import EVALUATOR_VERSION, ChunkEvaluator
from creditbridge.mappings.read import known_programmes
from creditbridge.mappings.segments import boundaries, evaluate_segments, run_segment
from creditbridge.mappings.writer import CR, EXISTING_COLS, Counts, ResultWriter
from creditbridge.programmes import Programme, load_programme
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.keys import in_keys, keys_value
from creditbridge.store.locks import flow_lock
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.core import SchoolTopic
from creditbridge.store.models.credits import CreditEvaluationRun

DEFAULT_CHUNK = 5000
# Marked teachers are read by key lists of at most this many: for a few thousand keys PostgreSQL's planner
# prefers scanning the whole table to probing its index (1M teachers: 5,000 keys made a 3.4 s parallel scan of
# learning_record's 12M rows, 1,000 keys a 0.18 s index scan), so a larger list makes the cost grow with the
# province again.
MARKED_CHUNK = 1000
# a full run that wrote at least this many results refreshes the planner's statistics of credit_result (PostgreSQL)
ANALYZE_AFTER = 10_000


@dataclass
class ProgrammeEvaluation:
    """One programme's part of an evaluation: its run, its counts, which mode ran and why."""

    evaluated: int
    changed: int
    run_id: int
    rule_version: str
    rule_hash: str
    mode: Literal["all", "incremental"]
    reason: str  # why this mode: "--all", what `marks.full_reason` said, or how many teachers were marked
    marked: int | None = None  # incremental: the marked teachers evaluated

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"evaluated": self.evaluated, "changed": self.changed, "run_id": self.run_id,
                               "rule_version": self.rule_version, "rule_hash": self.rule_hash, "mode": self.mode,
                               "reason": self.reason}
        if self.marked is not None:
            doc["marked"] = self.marked
        return doc


@dataclass
class EvaluateResult(Counts):
    """What `evaluate_store` did: the counts over every programme, each programme's part, and the marks deleted
    unread per programme (programmes never evaluated whole, see marks.dispose_unneeded)."""

    programmes: dict[str, ProgrammeEvaluation] = field(default_factory=dict)
    marks_disposed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The `credits evaluate --summary --json` document (and the scheduler ledger's counts)."""
        return {"evaluated": self.evaluated, "changed": self.changed, "new": self.new, "updated": self.updated,
                "withdrawn": self.withdrawn, "passed": self.passed, "failed": self.failed,
                "programmes": {code: p.as_json() for code, p in self.programmes.items()},
                "marks_disposed": self.marks_disposed}


def evaluate_store(settings: Settings, store: Store, *, programme: str | None = None, chunk_size: int = DEFAULT_CHUNK,
                   progress: Callable[[int], None] | None = None, workers: int = 1,
                   wait: bool = False, incremental: bool = False) -> EvaluateResult:
    """Evaluate every teacher (and host and school) of one programme, or of every programme in the store
    that has a rule file, and store the results. Returns the counts (evaluated, changed, passed, failed, ...).

    `programme` is a programme id or the path of a rule file. `workers` > 1 splits the roster into that
    many key ranges evaluated by separate processes (the evaluation is CPU-bound Python).

    `incremental`: evaluate only the teachers marked since (credit_mark, see marks.py), unless the programme
    must be evaluated whole (`marks.full_reason`: no complete run yet, a rule file whose hash changed, a
    catalog change, a large share of the roster marked). Each programme's counts say which `mode` ran and
    why (`reason`). Marks of programmes that never had a complete run are deleted unread (their first run
    evaluates everyone), counted per programme in `marks_disposed`."""
    result = EvaluateResult()
    # One evaluation at a time per store (store/locks.py): two would write the same results and run rows.
    with flow_lock(store, "evaluate", "credits evaluate", wait=wait):
        for code in [programme] if programme else known_programmes(store, settings):
            prog = load_programme(code)
            reason = marks.full_reason(store, prog, EVALUATOR_VERSION) if incremental else "--all"
            if reason is None:
                _evaluate_marked(store, prog, result, chunk_size, progress)
            else:
                _evaluate_programme(store, code, prog, result, chunk_size, progress, max(1, workers), reason)
        # after the programmes: one evaluated here for the first time has its complete run now, so its marks stay
        with store.engine.begin() as conn:
            result.marks_disposed = marks.dispose_unneeded(conn)
    return result


def _start_run(conn: Connection, prog: Programme, mode: str) -> int:
    runs = CreditEvaluationRun.__table__
    return conn.execute(insert(runs).values(
        programme=prog.id, rule_version=prog.version, rule_hash=prog.hash, started_at=utcnow(), mode=mode,
        evaluator_version=EVALUATOR_VERSION,
        evaluated=0, changed=0, passed=0, failed=0).returning(runs.c.id)).scalar_one()


def _finish_run(conn: Connection, run_id: int, pc: dict[str, int], passed: int, failed: int) -> None:
    runs = CreditEvaluationRun.__table__
    conn.execute(update(runs).where(runs.c.id == run_id).values(
        finished_at=utcnow(), evaluated=pc["evaluated"], changed=pc["changed"], passed=passed, failed=failed))


def _evaluate_programme(store: Store, source: str, prog: Programme, counts: EvaluateResult, chunk_size: int,
                        progress: Callable[[int], None] | None, workers: int, reason: str) -> None:
    """Evaluate every teacher of a programme (mode "all"), in `workers` key ranges, then the school-admin
    results from what the ranges gathered; a result of a role the rule file no longer has is withdrawn."""
    code = prog.id
    with store.engine.connect() as conn:
        with conn.begin():
            run_id = _start_run(conn, prog, "all")
            bounds: list[str | None] = boundaries(conn, code, workers) if workers > 1 else [None, None]
            # school and programme-wide marks: before any input is read, done when the whole run is
            whole_marks = marks.read_whole(conn, code)
        if len(bounds) <= 2:
            seg, ev = run_segment(conn, prog, run_id, None, None, chunk_size, progress)
            segments = [seg]
        else:
            with conn.begin():
                ev = Evaluation(Rules(prog, load_catalog(conn, code)), load_school_topics(conn, code))
            segments = evaluate_segments(store, source, prog, run_id, bounds, chunk_size, progress)
            for seg in segments:
                for school, st in seg.schools.items():
                    mine = ev.schools.setdefault(school, SchoolStats())
                    mine.teachers += st.teachers
                    mine.passed += st.passed
                    mine.records.extend(st.records)
        pc = {"evaluated": 0, "changed": 0}
        for seg in segments:
            counts.add(seg.counts)
            pc["evaluated"] += seg.pc["evaluated"]
            pc["changed"] += seg.pc["changed"]
        before_passed = counts.passed - sum(s.counts.passed for s in segments)
        before_failed = counts.failed - sum(s.counts.failed for s in segments)
        writer = ResultWriter(conn, prog, run_id, counts, pc)
        person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
        with conn.begin():
            admin = ev.finish()
            existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
                CR.c.programme == code, CR.c.role == "school_admin"))}
            writer.write(admin, existing, existing.keys())
            kept = [*person_roles, "school_admin"] if "school_admin" in prog.roles else person_roles
            stale_roles = conn.execute(select(*EXISTING_COLS).where(CR.c.programme == code,
                                                                    CR.c.role.not_in(kept))).all()
            writer.write([], {(r.teacher, r.role): r for r in stale_roles}, [(r.teacher, r.role) for r in stale_roles])
            marks.delete(conn, [*whole_marks, *(i for s in segments for i in s.deferred_marks)])
            _finish_run(conn, run_id, pc, counts.passed - before_passed, counts.failed - before_failed)
        if store.is_postgres and pc["changed"] >= ANALYZE_AFTER:
            # Fresh statistics after a large write: with the old ones (an empty table before the first run) the
            # planner reads the results of a few marked teachers by scanning every result of the programme
            # (1M teachers: 2 s per 1,000 keys instead of milliseconds). Autovacuum would, later, or never
            # where it is off; ANALYZE samples a fixed number of rows, a fraction of a second.
            with conn.begin():
                conn.exec_driver_sql(f"ANALYZE {CR.name}")
    counts.programmes[code] = ProgrammeEvaluation(pc["evaluated"], pc["changed"], run_id, prog.version, prog.hash,
                                                  mode="all", reason=reason)


def _evaluate_marked(store: Store, prog: Programme, counts: EvaluateResult, chunk_size: int,
                     progress: Callable[[int], None] | None) -> None:
    """Evaluate the marked teachers of a programme only, and the school-admin results of their schools (old and
    new), from their stored teacher results: what a full run would store, at the cost of the change.

    Every mark is read before any input, so whatever a mark stands for is visible to the reads that follow;
    exactly the marks read are deleted, with the results they led to (at the end when a school-admin result
    depends on them), so a mark committed meanwhile stays for the next run."""
    code = prog.id
    before_passed, before_failed = counts.passed, counts.failed
    pc = {"evaluated": 0, "changed": 0}
    with store.engine.connect() as conn:
        with conn.begin():
            run_id = _start_run(conn, prog, "incremental")
            found = marks.read_all(conn, code)
            rules = Rules(prog, load_catalog(conn, code))
            ev = Evaluation(rules, {})  # school topics: read with the teachers (MarkedReader)
            # a topic change: every teacher of the school
            teachers = set(found.teachers) | marks.teachers_of_schools(conn, code, found.whole_schools)
        writer = ResultWriter(conn, prog, run_id, counts, pc)
        evaluator = ChunkEvaluator(ev, prog, writer)
        person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
        records = RecordQuery(conn, code, rules)
        has_admin = "school_admin" in prog.roles
        schools = set(found.schools)
        keys = sorted(teachers)
        step = min(chunk_size, MARKED_CHUNK)
        chunks = [keys[at:at + step] for at in range(0, len(keys), step)]
        # PostgreSQL: the next chunk's inputs are read on a second connection while this chunk is evaluated and
        # written, so the server's work overlaps the evaluation's. The chunks hold other teachers, so a read
        # never waits for a write. SQLite reads on the one connection, in turn.
        prefetch = store.is_postgres and len(chunks) > 1
        with ExitStack() as stack:
            read_conn = stack.enter_context(store.engine.connect()) if prefetch else conn
            reader = MarkedReader(read_conn, code, rules, person_roles)
            pool = stack.enter_context(ThreadPoolExecutor(1)) if prefetch else None
            ahead = pool.submit(reader.read, chunks[0]) if pool is not None else None
            for n, chunk in enumerate(chunks):
                if pool is not None and ahead is not None:
                    got = ahead.result()
                    ahead = pool.submit(reader.read, chunks[n + 1]) if n + 1 < len(chunks) else None
                else:
                    got = reader.read(chunk)
                ev.add_school_topics(got.topics)
                results = evaluator.evaluate(got.people, got.records, got.assignments, got.existing)
                schools.update(p.school_code for p in got.people)
                with conn.begin():
                    writer.write(results, got.existing, got.existing.keys())
                    if not has_admin:
                        marks.delete(conn, [i for t in chunk for i in found.teachers.get(t, ())])
                if progress is not None and got.people:
                    progress(len(got.people))
        with conn.begin():
            if has_admin:
                _admin_of(conn, prog, rules, records, writer, sorted(schools))
            marks.delete(conn, found.ids if has_admin else found.whole_ids)
            _finish_run(conn, run_id, pc, counts.passed - before_passed, counts.failed - before_failed)
    counts.programmes[code] = ProgrammeEvaluation(pc["evaluated"], pc["changed"], run_id, prog.version, prog.hash,
                                                  mode="incremental", reason=f"{len(teachers)} marked teacher(s)",
                                                  marked=len(teachers))



def _admin_of(conn: Connection, prog: Programme, rules: Rules, records: RecordQuery, writer: ResultWriter,
              schools: list[str]) -> None:
    """The school-admin results of these schools from SQL: each school's roster teachers, how many of them
    passed by their stored teacher-role results, and its teachers' admin-task records. No unmarked teacher is
    evaluated again: their stored results are current (nothing of theirs changed since)."""
    code = prog.id
    d = conn.dialect
    # key lists bound as one parameter, MARKED_CHUNK at a time (see MARKED_CHUNK: the planner and large lists)
    roster = (select(TE.c.school_code, func.count()).where(TE.c.programme == code, in_keys(d, TE.c.school_code))
              .group_by(TE.c.school_code))
    passed = (select(TE.c.school_code, func.count())
              .join_from(TE, CR, and_(CR.c.programme == TE.c.programme, CR.c.teacher == TE.c.id_number,
                                      CR.c.role == "teacher"))
              .where(TE.c.programme == code, in_keys(d, TE.c.school_code), CR.c.passed.is_(True))
              .group_by(TE.c.school_code))
    stored = select(*EXISTING_COLS).where(CR.c.programme == code, CR.c.role == "school_admin",
                                          in_keys(d, CR.c.teacher))
    stats: dict[str, SchoolStats] = {}
    existing: dict[tuple[str, str], Any] = {}
    for at in range(0, len(schools), MARKED_CHUNK):
        part = schools[at:at + MARKED_CHUNK]
        bound = {"keys": keys_value(d, part)}
        for school, n in conn.execute(roster, bound).all():
            stats[school] = SchoolStats(teachers=n)
        for school, n in conn.execute(passed, bound).all():
            stats[school].passed = n
        for row in records.admin_records_of(part):
            stats[row[-1]].records.append(row[:-1])
        existing.update({(r.teacher, r.role): r for r in conn.execute(stored, bound).all()})
    plan = rules.plan("school_admin")
    admin = [plan.evaluate(school, st.records, school=st) for school, st in sorted(stats.items())]
    # a school without roster teachers any more has no admin result: its stored one is withdrawn
    writer.write(admin, existing, existing.keys())


# --- the continuous worker's entry point (runner/worker.py) ------------------------------------------------


def start_continuous_run(conn: Connection, prog: Programme) -> int:
    """The evaluation-run row a continuous worker writes its batches under (mode "continuous": never taken for
    a complete run by `marks.full_reason`). The caller commits it."""
    return _start_run(conn, prog, "continuous")


def evaluate_teachers(conn: Connection, prog: Programme, run_id: int, teachers: list[str], schools: set[str],
                      *, claim_schools: Callable[[list[str]], None] | None = None,
                      cache: dict[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate these (claimed) teachers of a programme and store their results, inside the caller's open
    transaction: the worker deletes its claimed marks and builds the outbox in the same transaction, so a
    worker killed mid-batch leaves nothing half-done. The same evaluation as an incremental run (fingerprints,
    stored-result comparison, change log); marks are the caller's. `schools` are schools the marks named (an old
    school after a transfer): with the teachers' current schools, their school-admin results are recomputed
    after `claim_schools(sorted schools)` (the caller's lock, so two workers never write one school's result
    from two views). The school topics read are only those of the teachers' schools. `cache`: a dict the caller
    keeps between batches, holding the compiled record queries (compiling them was ~80 ms of every batch)."""
    code = prog.id
    counts = Counts()
    pc = {"evaluated": 0, "changed": 0}
    keys = sorted(set(teachers))
    people = list(conn.execute(select(*people_cols()).where(
        TE.c.programme == code, TE.c.id_number.in_(keys)).order_by(TE.c.id_number)))
    own = sorted({p.school_code for p in people if p.school_code is not None})
    t = SchoolTopic.__table__
    topics: dict[str, list[str]] = {}
    if own:
        for school, topic in conn.execute(select(t.c.school_code, t.c.topic).where(
                t.c.programme == code, t.c.school_code.in_(own))):
            topics.setdefault(school, []).append(topic)
    rules = Rules(prog, load_catalog(conn, code))
    ev = Evaluation(rules, topics)
    writer = ResultWriter(conn, prog, run_id, counts, pc)
    # what the compiled SQL depends on: dialect, rule file, the codes and windows taken from the catalog
    shape = (conn.dialect.name, code, prog.hash, tuple(sorted(rules.codes)),
             tuple(sorted(rules.matches.get("school_admin", {}))), rules.window_start, rules.window_end,
             bool(rules.component_windows))
    records = cache.get(shape) if cache is not None else None
    if records is None:
        records = RecordQuery(conn, code, rules)
        if cache is not None:
            cache.clear()  # one shape per programme is current; an old one is never used again
            cache[shape] = records
    else:
        records.conn = conn
    person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
    existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
        CR.c.programme == code, CR.c.role.in_(person_roles), CR.c.teacher.in_(keys)))}
    results = ChunkEvaluator(ev, prog, writer).evaluate(people, records.fetch_of(keys),
                                                        records.assignments_of(keys), existing)
    writer.write(results, existing, existing.keys())
    if "school_admin" in prog.roles:
        every = sorted((schools | set(own)) - {None})
        if claim_schools is not None:
            claim_schools(every)
        _admin_of(conn, prog, rules, records, writer, every)
    run = CreditEvaluationRun
    conn.execute(update(run).where(run.id == run_id).values(
        evaluated=run.evaluated + pc["evaluated"], changed=run.changed + pc["changed"],
        passed=run.passed + counts.passed, failed=run.failed + counts.failed, finished_at=utcnow()))
    return {"evaluated": pc["evaluated"], "changed": pc["changed"], "passed": counts.passed,
            "failed": counts.failed, "withdrawn": counts.withdrawn}


