"""Categories per programme/stage/subject and the catalog's courses in Moodle.

Category idnumbers: `<programme>`, `<programme>/<stage>` (`<programme>/general` for courses of no
stage), `<programme>/<stage>/<subject>`. A course's idnumber and shortname are its catalog code, its
hours go in the course custom field `credit_hours` (settings.sync.hours_field), completion is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import select

from creditbridge.connector.errors import DuplicateError, InvalidParameterError, MoodleError
from creditbridge.connector.moodle import BatchResult
from creditbridge.records.vocabulary import STAGES, SUBJECTS
from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse
from creditbridge.sync.apply import ApplyContext, chunked, refusal
from creditbridge.sync.cohorts import _record_ref, load_refs
from creditbridge.sync.outcome import PlanLine, SyncOutcome
from creditbridge.sync.records import CatalogRow

GENERAL = "general"


def _stage_label(stage: str) -> str:
    for label, code in STAGES.items():
        if code == stage and not label.isascii():
            return label
    return stage


def _subject_label(stage: str, subject: str) -> str:
    for label, code in SUBJECTS.get(stage, {}).items():
        if code == subject:
            return label
    return subject


def category_chain(programme: str, programme_name: str, row: CatalogRow) -> list[tuple[str, str, str | None]]:
    """(idnumber, name, parent idnumber) from the programme down to the course's own category."""
    chain: list[tuple[str, str, str | None]] = [(programme, programme_name, None)]
    stage = row.stage or GENERAL
    stage_id = f"{programme}/{stage}"
    chain.append((stage_id, _stage_label(stage) if row.stage else "通识 (general)", programme))
    if row.stage and row.subject:
        chain.append((f"{stage_id}/{row.subject}", _subject_label(row.stage, row.subject), stage_id))
    return chain


def _find_category(ctx: ApplyContext, idnumber: str) -> int | None:
    found = ctx.client.get_categories({"idnumber": idnumber}, addsubcategories=False)
    return int(found[0]["id"]) if found else None


def ensure_categories(ctx: ApplyContext, chains: Iterable[list[tuple[str, str, str | None]]]) -> None:
    """Create missing categories one tree level per call (parents first). Known ones cost nothing;
    one not in the store is looked up by idnumber first, so a crashed run's categories are adopted."""
    load_refs(ctx, "category")
    levels: dict[int, dict[str, tuple[str, str | None]]] = {}
    for chain in chains:
        for depth, (idn, name, parent) in enumerate(chain):
            levels.setdefault(depth, {})[idn] = (name, parent)
    for depth in sorted(levels):
        missing = [(idn, name, parent) for idn, (name, parent) in sorted(levels[depth].items())
                   if ("category", idn) not in ctx.refs]
        adopted = [(idn, found, name) for idn, name, _ in missing if (found := _find_category(ctx, idn))]
        _record_ref(ctx, "category", adopted)
        to_make = [(idn, name, parent) for idn, name, parent in missing if ("category", idn) not in ctx.refs]
        for chunk in chunked(to_make, ctx.batch_size):
            items = []
            for idn, name, parent in chunk:
                parent_id = ctx.refs.get(("category", parent)) if parent else 0
                if parent_id is None:
                    continue  # its parent could not be made; reported there
                items.append({"name": name, "idnumber": idn, "parent": parent_id})

            def record(result: BatchResult) -> None:
                _record_ref(ctx, "category", [(item["idnumber"], int(answer["id"]), item["name"])
                                              for item, answer in result.succeeded])

            result = ctx.send(ctx.client.create_categories, items, record)
            for item, error in result.failed:
                ctx.outcome.error(None, "", f"category {item['idnumber']}: Moodle refused to create it: "
                                  f"{refusal(error)}")


def _hours_text(hours: Decimal) -> str:
    return format(hours.quantize(Decimal("0.1")).normalize(), "f")


def course_fields(ctx: ApplyContext, row: CatalogRow, category_id: int) -> dict[str, object]:
    return {"fullname": row.title[:254], "categoryid": category_id,
            "customfields": [{"shortname": ctx.settings.sync.hours_field, "value": _hours_text(row.hours)}]}


def _store_course(ctx: ApplyContext, pairs: Sequence[tuple[CatalogRow, int]]) -> None:
    if not pairs:
        return
    with ctx.store.session() as s:
        codes = [r.code for r, _ in pairs]
        existing = {c.code: c for c in s.scalars(select(CatalogCourse).where(
            CatalogCourse.programme == ctx.programme, CatalogCourse.code.in_(codes)))}
        for row, moodle_id in pairs:
            c = existing.get(row.code)
            if c is None:
                c = CatalogCourse(programme=ctx.programme, code=row.code)
                s.add(c)
            c.title, c.kind, c.topic, c.mode, c.hours = row.title, row.kind, row.topic, row.mode, row.hours
            c.stage, c.subject, c.city, c.recorded_by = row.stage, row.subject, row.city, row.recorded_by
            c.moodle_course_id = moodle_id
            c.row_hash = c.applied_hash = row.row_hash


def plan_courses(outcome: SyncOutcome, store: Store, programme: str, rows: Sequence[CatalogRow]
                 ) -> tuple[list[CatalogRow], list[tuple[CatalogRow, int]]]:
    """(courses to create, (course, Moodle id) to update): against what Moodle was last told, so a
    course whose last update failed is sent again."""
    with store.session() as s:
        known = {code: (moodle_id, applied) for code, moodle_id, applied in s.execute(
            select(CatalogCourse.code, CatalogCourse.moodle_course_id, CatalogCourse.applied_hash)
            .where(CatalogCourse.programme == programme))}
    creates: list[CatalogRow] = []
    updates: list[tuple[CatalogRow, int]] = []
    for row in rows:
        moodle_id, applied = known.get(row.code, (None, None))
        if moodle_id is None:
            creates.append(row)
            outcome.plan.append(PlanLine("create", row.row, row.code, row.title, row.kind))
        elif applied != row.row_hash:
            updates.append((row, moodle_id))
            outcome.plan.append(PlanLine("update", row.row, row.code, row.title, row.kind))
        else:
            outcome.unchanged += 1
    outcome.plan_counts.update({"create": len(creates), "update": len(updates), "unchanged": outcome.unchanged})
    return creates, updates


def apply_catalog(ctx: ApplyContext, rows: Sequence[CatalogRow], programme_name: str) -> None:
    """Create new courses, update changed ones; a row whose hash the store already has costs nothing."""
    outcome = ctx.outcome
    creates, updates = plan_courses(outcome, ctx.store, ctx.programme, rows)
    if not (creates or updates):
        return
    touched = [*creates, *(r for r, _ in updates)]
    chains = {row.code: category_chain(ctx.programme, programme_name, row) for row in touched}
    ensure_categories(ctx, chains.values())

    def category_of(row: CatalogRow) -> int | None:
        return ctx.refs.get(("category", chains[row.code][-1][0]))

    total, done = len(creates) + len(updates), 0
    for chunk in chunked(creates, ctx.batch_size):
        items, by_item = [], {}
        for row in chunk:
            cat = category_of(row)
            if cat is None:
                outcome.error(row.row, "", f"course {row.code}: its category could not be created")
                continue
            item = {"shortname": row.code, "idnumber": row.code, "enablecompletion": 1, "visible": 1,
                    "format": "topics", **course_fields(ctx, row, cat)}
            items.append(item)
            by_item[id(item)] = row

        def record(result: BatchResult, by_item: dict[int, CatalogRow] = by_item) -> None:
            _store_course(ctx, [(by_item[id(item)], int(answer["id"])) for item, answer in result.succeeded])

        result = ctx.send(ctx.client.create_courses, items, record)
        outcome.created += len(result.succeeded)
        adopt: list[tuple[CatalogRow, int]] = []
        for item, error in result.failed:
            row = by_item[id(item)]
            found = _adoptable_course(ctx, row, error)
            if found is None:
                outcome.error(row.row, "课程编号", f"course {row.code}: {refusal(error)}")
            else:
                adopt.append((row, found))
        if adopt:
            # Made by a run that crashed before recording it: bring its fields up to date, then record it.
            outcome.created += _update_courses(ctx, adopt, category_of)
        done += len(chunk)
        ctx.progress("courses", done, total)
    for batch in chunked(updates, ctx.batch_size):
        outcome.updated += _update_courses(ctx, batch, category_of)
        done += len(batch)
        ctx.progress("courses", done, total)


def _adoptable_course(ctx: ApplyContext, row: CatalogRow, error: MoodleError) -> int | None:
    if not isinstance(error, DuplicateError | InvalidParameterError) and error.errorcode not in (
            "shortnametaken", "courseidnumbertaken"):
        return None
    found = ctx.client.get_courses_by_field("idnumber", row.code)
    return int(found[0]["id"]) if found else None


def _update_courses(ctx: ApplyContext, pairs: Sequence[tuple[CatalogRow, int]], category_of: object) -> int:
    """Update the courses; returns how many Moodle took (a refused one is a row error, not counted)."""
    items, by_item = [], {}
    for row, moodle_id in pairs:
        cat = category_of(row)  # type: ignore[operator]
        if cat is None:
            ctx.outcome.error(row.row, "", f"course {row.code}: its category could not be created")
            continue
        item = {"id": moodle_id, **course_fields(ctx, row, cat)}
        items.append(item)
        by_item[id(item)] = (row, moodle_id)

    def record(result: BatchResult) -> None:
        _store_course(ctx, [by_item[id(item)] for item, _ in result.succeeded])

    result = ctx.send(ctx.client.update_courses, items, record)
    for item, error in result.failed:
        row, _ = by_item[id(item)]
        ctx.outcome.error(row.row, "", f"course {row.code} not updated: {refusal(error)}")
    return len(result.succeeded)
