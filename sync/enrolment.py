"""Which courses each teacher is enrolled in, and the lesson cases pushed to them.

A teacher is enrolled (manual enrolment, student role) in:
- the required courses and tasks of their stage and subject, and the general ones (no stage);
- the electives of the topics their school chose, the programme's mandatory topics and its free
  topics (subject electives), where the course's stage and subject match the teacher's, under
  `electives = "manual"` only; under "self" (the default) those electives are opened to the teacher
  by their audience cohorts instead (sync/electives.py);
- the lesson cases assigned to them (sync/lesson_cases.py).
Suspended teachers get nothing new. Nothing is unenrolled automatically: a course taken out of a
school's topics keeps the progress teachers made in it.

The store remembers every enrolment sync made (sync_enrolment), so only the difference is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, insert, select, update

from creditbridge.connector.moodle import BatchResult
from creditbridge.programmes import ProgrammeFacts
from creditbridge.store.models.core import CatalogCourse, LessonCaseAssignment, SchoolTopic
from creditbridge.store.models.sync import Enrolment, SyncState
from creditbridge.sync.apply import ApplyContext, chunked, refusal
from creditbridge.sync.electives import SELF, audience_specs, mend_welcome_messages
from creditbridge.sync.lesson_cases import CaseTaker, LessonCase, assign_lesson_cases


@dataclass(frozen=True)
class Learner:
    """A teacher as enrolment needs them (from the store's Teacher row)."""

    id_number: str
    moodle_user_id: int
    stage: str
    subject: str | None
    city: str
    school_code: str
    active: bool
    row: int | None = None


@dataclass
class CourseIndex:
    moodle_ids: dict[str, int] = field(default_factory=dict)
    # (kind, topic, stage, subject, city) per code for the courses that can be enrolled
    courses: list[tuple[str, str, str | None, str | None, str | None, str | None]] = field(default_factory=list)
    cases: list[LessonCase] = field(default_factory=list)
    fingerprint: str = ""
    # True under `electives = "self"`: electives are opened to their audience cohorts, not enrolled.
    self_electives: bool = False
    # elective code -> (audience cohort idnumber, name), under the self policy
    audiences: dict[str, tuple[str, str]] = field(default_factory=dict)

    def meant_for(self, who: Learner, topics: set[str]) -> set[str]:
        """Every course meant for the teacher: required courses and tasks, and the electives they may take."""
        out: set[str] = set()
        for code, kind, topic, stage, subject, city in self.courses:
            if stage is not None and stage != who.stage:
                continue
            if subject is not None and subject != who.subject:
                continue
            if kind in ("required", "task"):
                if city is None or city == who.city:
                    out.add(code)
            elif kind == "elective" and (topic is None or topic in topics):
                out.add(code)
        return out

    def wanted(self, who: Learner, topics: set[str]) -> set[str]:
        """The courses to enrol the teacher in (manually): under the self policy, not the electives."""
        meant = self.meant_for(who, topics)
        return meant - self.audiences.keys() if self.self_electives else meant

    def audiences_of(self, who: Learner, topics: set[str]) -> dict[str, str]:
        """Audience cohort idnumber -> name of the electives the teacher may self-enrol in (self policy)."""
        if not self.self_electives:
            return {}
        return dict(self.audiences[code] for code in self.meant_for(who, topics) if code in self.audiences)


def load_courses(ctx: ApplyContext, rules: ProgrammeFacts) -> CourseIndex:
    idx = CourseIndex()
    with ctx.store.session() as s:
        rows = s.execute(select(CatalogCourse.code, CatalogCourse.kind, CatalogCourse.topic, CatalogCourse.stage,
                                CatalogCourse.subject, CatalogCourse.city, CatalogCourse.recorded_by,
                                CatalogCourse.moodle_course_id)
                         .where(CatalogCourse.programme == ctx.programme,
                                CatalogCourse.moodle_course_id.is_not(None))
                         .order_by(CatalogCourse.code)).all()
        topics = s.execute(select(SchoolTopic.school_code, SchoolTopic.topic)
                           .where(SchoolTopic.programme == ctx.programme)
                           .order_by(SchoolTopic.school_code, SchoolTopic.topic)).all()
    for code, kind, topic, stage, subject, city, recorded_by, moodle_id in rows:
        if moodle_id is None:
            continue  # not selected: the query keeps only courses with a Moodle id
        idx.moodle_ids[code] = moodle_id
        if kind == "lesson_case":
            idx.cases.append(LessonCase(code, stage, subject, city, recorded_by))
        else:
            idx.courses.append((code, kind, topic, stage, subject, city))
    idx.self_electives = ctx.settings.sync.electives == SELF
    if idx.self_electives:
        idx.audiences = audience_specs(ctx.programme, rules.name, (
            (code, topic, stage, subject) for code, kind, topic, stage, subject, _ in idx.courses
            if kind == "elective"))
    digest = hashlib.sha256()
    digest.update(json.dumps([list(r) for r in rows], default=str).encode())
    digest.update(json.dumps([list(t) for t in topics]).encode())
    digest.update(json.dumps([rules.lesson_cases, rules.by_city, rules.mandatory_topics, rules.free_topics,
                              ctx.settings.sync.student_role_id]).encode())
    if idx.self_electives:  # switching the policy passes over every teacher (the manual way's digest is unchanged)
        digest.update(json.dumps(["electives", SELF]).encode())
    idx.fingerprint = digest.hexdigest()
    return idx


def fingerprint_key(programme: str) -> str:
    return f"enrolment_fingerprint:{programme}"


def stored_fingerprint(ctx: ApplyContext) -> str | None:
    with ctx.store.session() as s:
        return s.scalar(select(SyncState.value).where(SyncState.key == fingerprint_key(ctx.programme)))


def save_fingerprint(ctx: ApplyContext, value: str) -> None:
    with ctx.store.session() as s:
        state = s.get(SyncState, fingerprint_key(ctx.programme))
        if state is None:
            s.add(SyncState(key=fingerprint_key(ctx.programme), value=value))
        else:
            state.value = value


class Enroller:
    """Enrols batches of learners; keeps the lesson-case load across batches of one run."""

    def __init__(self, ctx: ApplyContext, rules: ProgrammeFacts, index: CourseIndex) -> None:
        self.ctx = ctx
        self.rules = rules
        self.index = index
        with ctx.store.session() as s:
            self.school_topics: dict[str, set[str]] = defaultdict(set)
            for school, topic in s.execute(select(SchoolTopic.school_code, SchoolTopic.topic)
                                           .where(SchoolTopic.programme == ctx.programme)):
                self.school_topics[school].add(topic)
            self.load: dict[str, int] = dict(s.execute(
                select(LessonCaseAssignment.course, func.count())
                .where(LessonCaseAssignment.programme == ctx.programme)
                .group_by(LessonCaseAssignment.course)).all())
        self.always = set(rules.mandatory_topics) | set(rules.free_topics)
        self.short: dict[str, int] = {}
        # Whether this run looked for managed courses whose welcome message is back on (once, before enrolling).
        self._welcome_checked = False
        # Managed courses still sending a welcome message (it could not be turned off): nobody is enrolled there.
        self._sending: set[str] = set()
        self._cache: dict[tuple[str, str | None, str, frozenset[str]], frozenset[str]] = {}
        self._audiences: dict[tuple[str, str | None, str, frozenset[str]], dict[str, str]] = {}

    def _wanted(self, who: Learner) -> frozenset[str]:
        # A province has a million teachers but few distinct (stage, subject, city, topics) combinations.
        topics = frozenset(self.school_topics.get(who.school_code, set()) | self.always)
        key = (who.stage, who.subject, who.city, topics)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = frozenset(self.index.wanted(who, set(topics)))
        return found

    def audiences(self, who: Learner) -> dict[str, str]:
        """The audience cohorts (idnumber -> name) a serving teacher belongs in; none for a leaver."""
        if not who.active:
            return {}
        topics = frozenset(self.school_topics.get(who.school_code, set()) | self.always)
        key = (who.stage, who.subject, who.city, topics)
        found = self._audiences.get(key)
        if found is None:
            found = self._audiences[key] = self.index.audiences_of(who, set(topics))
        return found

    def run(self, learners: Sequence[Learner]) -> set[str]:
        """Assign lesson cases, then enrol. Returns the teachers whose every enrolment is in Moodle."""
        ctx, programme = self.ctx, self.ctx.programme
        ids = [w.id_number for w in learners]
        held: dict[str, set[str]] = defaultdict(set)
        enrolled: dict[str, set[str]] = defaultdict(set)
        with ctx.store.session() as s:
            for chunk in chunked(ids, 500):
                for teacher, course in s.execute(select(LessonCaseAssignment.teacher, LessonCaseAssignment.course)
                                                 .where(LessonCaseAssignment.programme == programme,
                                                        LessonCaseAssignment.teacher.in_(chunk))):
                    held[teacher].add(course)
                for teacher, course in s.execute(select(Enrolment.teacher, Enrolment.course)
                                                 .where(Enrolment.programme == programme,
                                                        Enrolment.teacher.in_(chunk))):
                    enrolled[teacher].add(course)
        active = [w for w in learners if w.active]
        takers = [CaseTaker(w.id_number, w.stage, w.subject, w.city) for w in active]
        result = assign_lesson_cases(takers, self.index.cases, {t.id_number: held[t.id_number] for t in takers},
                                     per_teacher=self.rules.lesson_cases, by_city=self.rules.by_city,
                                     load=self.load)
        if result.new:
            with ctx.store.session() as s:
                for teacher, codes in result.new.items():
                    for code in codes:
                        s.add(LessonCaseAssignment(programme=programme, teacher=teacher, course=code, enrolled=False))
                        held[teacher].add(code)
            ctx.outcome.lesson_cases_assigned += result.count
        self.short.update(result.short)

        todo: list[tuple[Learner, str]] = []
        for w in active:
            wanted = self._wanted(w) | held[w.id_number]
            todo.extend((w, code) for code in sorted(wanted - enrolled[w.id_number]) if code in self.index.moodle_ids)
        failed: set[str] = set()
        role = ctx.settings.sync.student_role_id
        if todo and self.index.self_electives and not self._welcome_checked:
            # Under the self policy sync keeps managed courses' welcome messages off (electives.configure_courses);
            # an administrator may have turned one back on since. The manual policy leaves them to the site.
            self._welcome_checked = True
            self._sending = mend_welcome_messages(ctx, self.index.moodle_ids, self.index.audiences)
        if self._sending:
            waiting = [(w, code) for w, code in todo if code in self._sending]
            todo = [(w, code) for w, code in todo if code not in self._sending]
            for w, code in waiting:
                failed.add(w.id_number)  # not done: the next run tries again
                ctx.outcome.error(w.row, "", f"could not enrol the teacher in {code}: its course welcome message "
                                             "is on and could not be turned off (the next run tries again)")
        for pairs in chunked(todo, ctx.wave_size):  # a wave: one batch per call in flight (ctx.send)
            items = [{"roleid": role, "userid": w.moodle_user_id, "courseid": self.index.moodle_ids[code]}
                     for w, code in pairs]
            lookup = {id(item): pair for item, pair in zip(items, pairs, strict=True)}

            def record(result: BatchResult, lookup: dict[int, tuple[Learner, str]] = lookup) -> None:
                done = [lookup[id(item)] for item, _ in result.succeeded]
                if not done:
                    return
                with ctx.store.session() as s:
                    s.execute(insert(Enrolment), [{"programme": programme, "teacher": w.id_number, "course": code}
                                                  for w, code in done])
                    cases = [{"t": w.id_number, "c": code} for w, code in done if code in held[w.id_number]]
                    if cases:
                        table = LessonCaseAssignment.__table__
                        s.connection().execute(
                            update(table).where(table.c.programme == programme, table.c.teacher == bindparam("t"),
                                                table.c.course == bindparam("c")).values(enrolled=True), cases)

            res = ctx.send(ctx.client.enrol_users, items, record)
            for item, error in res.failed:
                w, code = lookup[id(item)]
                failed.add(w.id_number)
                ctx.outcome.error(w.row, "", f"could not enrol the teacher in {code}: {refusal(error)}")
        return {w.id_number for w in learners} - failed
