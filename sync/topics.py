"""Storing schools' elective topic choices (the rules are checked by sync.plan.plan_topics).

A school in the file gets exactly the topics the file lists; schools not in the file keep theirs.
Enrolment in the chosen topics' electives follows in the same run (sync.roster.finish_teachers).
"""

from __future__ import annotations

from sqlalchemy import delete, select

from creditbridge.store import Store
from creditbridge.store.models.core import CatalogCourse, SchoolTopic
from creditbridge.sync.outcome import PlanLine
from creditbridge.sync.plan import TopicsPlan


def topic_plan_lines(plan: TopicsPlan) -> list[PlanLine]:
    return ([PlanLine("add topic", None, school, topic) for school, topic in plan.added]
            + [PlanLine("withdraw topic", None, school, topic) for school, topic in plan.removed])


def store_topics(store: Store, programme: str, plan: TopicsPlan) -> None:
    """One transaction: the file's choices replace those of the schools it lists."""
    with store.session() as s:
        for school, topic in plan.removed:
            s.execute(delete(SchoolTopic).where(SchoolTopic.programme == programme,
                                                SchoolTopic.school_code == school, SchoolTopic.topic == topic))
        for school, topic in plan.added:
            s.add(SchoolTopic(programme=programme, school_code=school, topic=topic))


def catalog_topics(store: Store, programme: str) -> set[str] | None:
    """The topics the catalog's courses belong to, or None before any catalog was synced (then not checked)."""
    with store.session() as s:
        topics = {t for t in s.scalars(select(CatalogCourse.topic).where(
            CatalogCourse.programme == programme, CatalogCourse.topic.is_not(None)).distinct()) if t is not None}
    return topics or None
