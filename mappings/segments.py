"""A full evaluation's roster split into key ranges (segments), each evaluated chunk by chunk: in this process,
or each in a worker process of its own (the evaluation is CPU-bound Python).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from creditbridge import CreditbridgeError
from creditbridge.mappings import marks
from creditbridge.mappings.chunk_inputs import TE, RecordQuery, key_range, load_catalog, load_school_topics, people_cols
from creditbridge.mappings.evaluate import Evaluation, Rules, SchoolStats
from creditbridge.mappings.fingerprint import ChunkEvaluator
from creditbridge.mappings.writer import CR, EXISTING_COLS, Counts, ResultWriter
from creditbridge.programmes import Programme, builtin_rule_path, load_programme
from creditbridge.store import Store, open_store


class EvaluationError(CreditbridgeError):
    """A worker process found the rule file changed since the run began (its hash differs)."""


@dataclass
class Segment:
    """What one key range produced: counts, what the school-admin role needs from it, and the marks it
    evaluated but left for the end of the run (programmes with a school-admin role)."""

    counts: Counts
    pc: dict[str, int]
    schools: dict[str, SchoolStats]
    deferred_marks: list[int] = field(default_factory=list)


def run_segment(conn: Connection, prog: Programme, run_id: int, start: str | None, end: str | None,
                chunk_size: int, progress: Callable[[int], None] | None) -> tuple[Segment, Evaluation]:
    """Teachers with start < ID number <= end (None: open), chunk by chunk: read in one transaction,
    evaluate, write in another (a short write transaction: SQLite allows one writer at a time). The marks of
    the chunk's people are read before their inputs and deleted with the chunk's results (or, when a
    school-admin result depends on them, returned to be deleted once that is written)."""
    code = prog.id
    with conn.begin():
        rules = Rules(prog, load_catalog(conn, code))
        ev = Evaluation(rules, load_school_topics(conn, code))
    counts, pc = Counts(), {"evaluated": 0, "changed": 0}
    writer = ResultWriter(conn, prog, run_id, counts, pc)
    evaluator = ChunkEvaluator(ev, prog, writer)
    person_roles = [r for r in ("teacher", "workshop_host") if r in prog.roles]
    records = RecordQuery(conn, code, rules)
    defer_marks = "school_admin" in prog.roles
    deferred: list[int] = []
    last = start
    while True:
        with conn.begin():
            q = select(*people_cols()).where(TE.c.programme == code, key_range(TE.c.id_number, last, end))
            people = conn.execute(q.order_by(TE.c.id_number).limit(chunk_size)).all()
            final = len(people) < chunk_size
            lo, hi = last, (end if final else people[-1].id_number)
            # before the inputs: a mark committed after this read is left for the next evaluation
            chunk_marks = marks.read_range(conn, code, lo, hi)
            recs = records.fetch(lo, hi)
            asg = records.assignments(lo, hi)
            existing = {(r.teacher, r.role): r for r in conn.execute(select(*EXISTING_COLS).where(
                CR.c.programme == code, CR.c.role.in_(person_roles), key_range(CR.c.teacher, lo, hi))).all()}
            # On PostgreSQL (READ COMMITTED) a teacher added to the range after the roster read above has a mark
            # read here but was not evaluated: such a mark stays. A marked key not on the roster now (records of
            # someone not in the roster) is done: adding them later marks them again.
            seen = {p.id_number for p in people} | {k[0] for k in existing}
            unseen = sorted({t for _, t in chunk_marks if t not in seen})
            late = set(conn.execute(select(TE.c.id_number).where(
                TE.c.programme == code, TE.c.id_number.in_(unseen))).scalars()) if unseen else set()
        results = evaluator.evaluate(people, recs, asg, existing)
        done = [i for i, t in chunk_marks if t not in late]
        with conn.begin():
            writer.write(results, existing, existing.keys())
            if defer_marks:
                deferred.extend(done)
            else:
                marks.delete(conn, done)
        if progress is not None and people:
            progress(len(people))
        if final:
            break
        last = people[-1].id_number
    return Segment(counts, pc, ev.schools, deferred), ev


def evaluate_segments(store: Store, source: str, prog: Programme, run_id: int, bounds: list[str | None],
                      chunk_size: int, progress: Callable[[int], None] | None) -> list[Segment]:
    """The key ranges between `bounds` (see `boundaries`), each evaluated by a worker process of its own;
    `progress` is told each range's evaluated count as it ends."""
    # spawn, not fork: a forked child would share this process's open connections
    with ProcessPoolExecutor(len(bounds) - 1, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_segment_worker, store.url, _source_path(source), prog.hash, run_id,
                               bounds[i], bounds[i + 1], chunk_size) for i in range(len(bounds) - 1)]
        segments = []
        for f in futures:
            segments.append(f.result())
            if progress is not None:
                progress(segments[-1].pc["evaluated"])
    return segments


def _segment_worker(url: str, rule_source: str, rule_hash: str, run_id: int, start: str | None, end: str | None,
                    chunk_size: int) -> Segment:
    """One worker process: its own engine, the same rule file (checked by hash), one key range."""
    prog = load_programme(rule_source)
    if prog.hash != rule_hash:
        raise EvaluationError(f"rule file {rule_source} changed during the evaluation")
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            seg, _ev = run_segment(conn, prog, run_id, start, end, chunk_size, None)
        return seg
    finally:
        store.dispose()


def boundaries(conn: Connection, code: str, parts: int) -> list[str | None]:
    """Key-range ends splitting the roster into `parts` nearly equal ranges: [None, e1, ..., None]."""
    total = conn.execute(select(func.count()).select_from(TE).where(TE.c.programme == code)).scalar_one()
    ends: list[str | None] = [None]
    for k in range(1, parts):
        at = conn.execute(select(TE.c.id_number).where(TE.c.programme == code).order_by(TE.c.id_number)
                          .offset(max(0, total * k // parts - 1)).limit(1)).scalar()
        if at is not None and at != ends[-1]:
            ends.append(at)
    return [*ends, None]


def _source_path(source: str) -> str:
    """A programme id or rule-file path as something a worker process can load the same file from."""
    path = builtin_rule_path(source)
    return str(path) if path is not None else source

