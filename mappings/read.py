"""The read API of stored results: one person's, every result of some programmes (streamed), a run's changes,
and which programmes `credits evaluate` evaluates.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from creditbridge.programmes import builtin_rule_path
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.credits import CreditResult

CR = CreditResult.__table__
TE = Teacher.__table__


def as_float(v: Any) -> float | None:
    """A stored number (Decimal on PostgreSQL) as JSON carries it."""
    return None if v is None else float(v)


def stored_result(store: Store, teacher: str, programme: str | None = None,
                  role: str | None = None) -> list[dict[str, Any]]:
    """The stored results of one person (or school, for school_admin), newest programme first."""
    q = select(CR).where(CR.c.teacher == teacher)
    if programme:
        q = q.where(CR.c.programme == programme)
    if role:
        q = q.where(CR.c.role == role)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(CR.c.programme, CR.c.role)).all()
    return [result_json(r._mapping) for r in rows]


LIST_KEYS = ("teacher", "programme", "role", "hours", "credits", "points", "passed", "components", "reasons",
             "reasons_zh")


def iter_results(store: Store, programmes: list[str], batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every stored result of the programmes, in the `credits evaluate --json` list shape, one at a time:
    read through a server-side cursor (stream_results + yield_per), so memory stays flat for a million."""
    if not programmes:
        return
    with store.engine.connect() as conn:
        res = conn.execution_options(stream_results=True, yield_per=batch).execute(
            select(*(CR.c[k] for k in LIST_KEYS)).where(CR.c.programme.in_(programmes)).order_by(
                CR.c.programme, CR.c.role, CR.c.teacher))
        for r in res:
            m = r._mapping
            yield {"teacher": m["teacher"], "programme": m["programme"], "role": m["role"],
                   "hours": as_float(m["hours"]), "credits": as_float(m["credits"]), "points": as_float(m["points"]),
                   "passed": bool(m["passed"]), "components": m["components"], "reasons": m["reasons"],
                   "reasons_zh": m["reasons_zh"]}


def result_json(m: Any) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        return None if v is None else float(v) if isinstance(v, Decimal | int | float) else v

    return {"teacher": m["teacher"], "programme": m["programme"], "role": m["role"], "year": m["year"],
            "hours": num(m["hours"]), "credits": num(m["credits"]), "points": num(m["points"]),
            "passed": bool(m["passed"]), "components": m["components"], "reasons": m["reasons"],
            "reasons_zh": m["reasons_zh"], "rule_version": m["rule_version"], "rule_hash": m["rule_hash"],
            "result_hash": m["result_hash"]}


def known_programmes(store: Store, settings: Settings | None) -> list[str]:
    """The programmes `credits evaluate` evaluates: those of the store with a rule file, else (none yet) the
    programme of the settings' sync section."""
    with store.engine.connect() as conn:
        codes = [c for (c,) in conn.execute(select(TE.c.programme).distinct().order_by(TE.c.programme))]
    known = [c for c in codes if builtin_rule_path(c) is not None]
    if known:
        return known
    fallback = getattr(getattr(settings, "sync", None), "programme", None)
    return [fallback] if fallback else []
