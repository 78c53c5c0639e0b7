"""Whether a person must be evaluated again: the fingerprint of their inputs (input_hash), and the evaluator of
a chunk of roster people that keeps a stored result whose fingerprint is unchanged (docs/rules.md).
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from creditbridge.mappings.evaluate import Evaluation, Person, Result, Rules
from creditbridge.mappings.writer import ResultWriter
from creditbridge.programmes import Programme

_first = itemgetter(0)


# Part of every input fingerprint: change it whenever the evaluator's logic changes without a rule-file change,
# so that the next run re-evaluates everyone instead of keeping results computed by the old logic.
EVALUATOR_VERSION = "2"


def fingerprint_salt(prog: Programme, rules: Rules) -> bytes:
    """What every person's fingerprint shares: evaluator version, rule file hash and the catalog."""
    catalog = repr(sorted(rules.catalog.items()))
    return hashlib.sha256(f"{EVALUATOR_VERSION}|{prog.hash}|{catalog}".encode()).digest()


def fingerprint(salt: bytes, person: str, records: list[tuple[Any, ...]], assigned: Iterable[str]) -> str:
    """The inputs of one person's results: `person` (school, stage, subject, city, the school's topics), the
    records the evaluator sees and the assigned lesson cases. Records are taken in the order the store returns
    them, not sorted (sorting cost more than the rest of the fingerprint): should that order ever differ for
    the same records, the fingerprint differs and the person is evaluated again, which gives the same result
    (evaluation does not depend on record order), so a spurious difference costs time, never correctness.
    The records are serialised with marshal (a fifth of repr's cost); its format may change with the Python
    version, which again costs one re-evaluation, never a wrong result."""
    h = hashlib.blake2b(salt, digest_size=20)
    h.update(person.encode())
    h.update(marshal.dumps(records))
    h.update("\x1e".join(sorted(assigned)).encode())
    return h.hexdigest()


class ChunkEvaluator:
    """Evaluates chunks of roster people read from the store, keeping a stored result whose input fingerprint
    is unchanged (the same code for a key range of a full run and for the marked teachers of an incremental
    one)."""

    def __init__(self, ev: Evaluation, prog: Programme, writer: ResultWriter) -> None:
        self.ev, self.writer = ev, writer
        self.normalised: dict[tuple[Any, Any, Any], tuple[str | None, str | None, str | None]] = {}
        self.person_inputs: dict[tuple[str, tuple[str | None, str | None, str | None]], str] = {}
        self.salt = fingerprint_salt(prog, ev.rules)
        self.has_teacher_role = "teacher" in prog.roles

    def evaluate(self, people: Sequence[Any], records: list[tuple[Any, ...]], assignments: list[tuple[Any, ...]],
                 existing: dict[tuple[str, str], Any]) -> list[Result]:
        ev, writer, salt = self.ev, self.writer, self.salt
        normalised, person_inputs = self.normalised, self.person_inputs
        # rows come ordered by teacher: one group per teacher, each row already the evaluator's RecTuple
        by_teacher = {t: list(g) for t, g in groupby(records, _first)}
        assigned: dict[str, set[str]] = {}
        for t, c in assignments:
            a = assigned.get(t)
            if a is None:
                a = assigned[t] = set()
            a.add(c)
        empty: frozenset[str] = frozenset()
        results: list[Result] = []
        for idn, school, stage, subject, city in people:
            # stage/subject/city normalised once per distinct combination, not once per teacher
            norm = normalised.get((stage, subject, city))
            if norm is None:
                p = Person.of("", "", stage, subject, city)
                norm = normalised[(stage, subject, city)] = (p.stage, p.subject, p.city)
            person = Person(idn, school, *norm)
            recs = by_teacher.get(idn, [])
            asg = assigned.get(idn, empty)
            # what the fingerprint says of the person, made once per school and normalised combination
            inputs = person_inputs.get((school, norm))
            if inputs is None:
                topics = "\x1f".join(sorted(ev.topics.get(school, ev.default_topics)))
                inputs = person_inputs[(school, norm)] = f"{school}\x1f{norm}\x1f{topics}"
            fp = fingerprint(salt, inputs, recs, asg)
            old = existing.get((idn, "teacher")) if self.has_teacher_role else None
            if old is not None and old.input_hash == fp:
                host = existing.get((idn, "workshop_host"))
                if (host is not None and host.input_hash == fp) or (host is None and not ev.has_host_records(recs)):
                    # inputs unchanged since the stored result: it stands, without evaluating
                    ev.unchanged(person, recs, bool(old.passed))
                    writer.keep(old)
                    if host is not None:
                        writer.keep(host)
                    continue
            for r in ev.teacher(person, recs, asg):
                r.input_hash = fp
                results.append(r)
        return results

