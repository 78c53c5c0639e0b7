"""Electives open to exactly the teachers they are meant for, without an enrolment call per teacher and course.

Policy `[sync] electives = "self"` (docs/sync.md, "Enrolment policy"): every elective course gets one enrol_self
instance (made by local_creditbridge_configure_enrolment: core web services cannot) that only the members of
its *audience cohort* may use. An audience is the programme, the elective's topic and the course's stage and
subject where it has them (`*` where not): `audience:<programme>/<topic>/<stage>/<subject>`. A teacher is a
member of the audiences of every elective they may take (their school's topics, the mandatory and free topics,
their stage and subject), so a transfer or a school's new topic choice moves a few cohort memberships, and a
teacher enrols in the electives they choose with "Enrol me".

Every managed course's manual instance also gets its course welcome message turned off by the same call.
What each course was configured with is remembered in the store (MoodleRef kind `enrol_config`), so an
unchanged re-sync sends nothing. An administrator may turn a welcome message back on later: before a run's first
enrolment one read (local_creditbridge_get_courses_sending_welcome) finds such courses, and they are configured
again before anyone is enrolled (mend_welcome_messages).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import delete, select

from creditbridge.connector.errors import (
    AccessDeniedError,
    FunctionNotInServiceError,
    MoodleError,
    RecordNotFoundError,
    UnknownFunctionError,
)
from creditbridge.connector.functions import (
    CONFIGURE_ENROLMENT_FUNCTION,
    PLUGIN_FUNCTIONS_SINCE,
    WELCOME_COURSES_FUNCTION,
)
from creditbridge.connector.moodle import BatchResult
from creditbridge.store.models.sync import CohortMember, MoodleRef
from creditbridge.sync.apply import ApplyContext, chunked, refusal
from creditbridge.sync.cohorts import ensure_cohorts
from creditbridge.sync.outcome import SyncAborted

SELF = "self"
CONFIG_KIND = "enrol_config"
ANY = "*"
IDNUMBER_MAX = 100  # Moodle cohort.idnumber
SEARCH_PAGE = 200  # audience cohorts asked per core_cohort_search_cohorts call


def self_policy(ctx: ApplyContext) -> bool:
    return ctx.settings.sync.electives == SELF


def audience_idnumber(programme: str, topic: str | None, stage: str | None, subject: str | None) -> str:
    """The cohort whose members may self-enrol in an elective of this topic, stage and subject.

    Moodle's cohort.idnumber holds 100 characters. A longer key keeps its beginning and ends with a digest of
    the whole: cut alone, two topics that differ only past the cut would share one cohort, and the teachers of
    one could enrol in the electives of the other."""
    key = f"audience:{programme}/{topic or ANY}/{stage or ANY}/{subject or ANY}"
    if len(key) <= IDNUMBER_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{key[:IDNUMBER_MAX - len(digest) - 1]}~{digest}"


def audience_name(programme_name: str, topic: str | None, stage: str | None, subject: str | None) -> str:
    parts = [programme_name, topic or "", stage or "", subject or ""]
    return " ".join(p for p in parts if p)[:254]


def _config_key(programme: str, code: str) -> str:
    return f"{programme}/{code}"


def _signature(courseid: int, cohortid: int, roleid: int) -> str:
    """What a course was configured with: a course recreated, an audience recreated or another role given by
    its self enrolment (`student_role_id`) means configure again."""
    return f"course {courseid} cohort {cohortid} role {roleid} welcome 0"


def configure_courses(ctx: ApplyContext, moodle_ids: dict[str, int], audiences: dict[str, tuple[str, str]], *,
                      again: bool = False) -> bool:
    """Make every managed course's enrolment methods right: welcome message off; for an elective (`audiences`:
    code -> (audience idnumber, name)) creditbridge's self instance open to its audience cohort.

    Only courses whose configuration differs from what the store remembers are sent, unless `again` (Moodle
    was seen to differ from what the store remembers). A course Moodle refuses is a run error naming it; the
    rest go on (the next run retries it). Returns whether every course is right.
    """
    programme = ctx.programme
    ensure_cohorts(ctx, dict(audiences.values()))
    with ctx.store.session() as s:
        known = {r.idnumber: r.name for r in s.scalars(select(MoodleRef).where(MoodleRef.kind == CONFIG_KIND))}
    ok = True
    role = ctx.settings.sync.student_role_id
    items: list[dict[str, int]] = []
    codes: dict[int, str] = {}
    for code, courseid in sorted(moodle_ids.items()):
        audience = audiences.get(code)
        cohortid = ctx.refs.get(("cohort", audience[0]), 0) if audience else 0
        if audience and not cohortid:
            ok = False
            continue  # its cohort could not be made: ensure_cohorts said why; the next run tries again
        if not again and known.get(_config_key(programme, code)) == _signature(courseid, cohortid, role):
            continue
        item = {"courseid": courseid, "manualwelcome": 0, "selfcohortid": cohortid, "roleid": role}
        items.append(item)
        codes[id(item)] = code
    for chunk in chunked(items, ctx.wave_size):

        def record(result: BatchResult) -> None:
            with ctx.store.session() as s:
                for item, answer in result.succeeded:
                    key = _config_key(programme, codes[id(item)])
                    sig = _signature(item["courseid"], item["selfcohortid"], item["roleid"])
                    selfid = int(answer.get("selfid") or 0) if isinstance(answer, dict) else 0
                    row = s.scalar(select(MoodleRef).where(MoodleRef.kind == CONFIG_KIND, MoodleRef.idnumber == key))
                    if row is None:
                        s.add(MoodleRef(kind=CONFIG_KIND, idnumber=key, moodle_id=selfid, name=sig))
                    else:
                        row.moodle_id, row.name = selfid, sig

        try:
            result = ctx.send(ctx.client.configure_enrolment, list(chunk), record)
        except SyncAborted as e:
            cause = e.__cause__
            if isinstance(cause, FunctionNotInServiceError | UnknownFunctionError):
                raise SyncAborted(f"{e}: install local_creditbridge 1.2 and add {CONFIGURE_ENROLMENT_FUNCTION} to the "
                                  'token\'s service (docs/moodle.md), or set [sync] electives = "manual"') from cause
            if isinstance(cause, MoodleError) and cause.capability:
                # A right missing stops every course alike: say which one the role needs.
                raise SyncAborted(f"{e}: the token user's role needs the capability {cause.capability} "
                                  "(docs/moodle.md)") from cause
            raise
        for item, error in result.failed:
            ok = False
            ctx.outcome.error(None, "", f"course {codes[id(item)]}: could not configure its enrolment methods: "
                                        f"{refusal(error)}")
    return ok


def audience_specs(programme: str, programme_name: str,
                   electives: Iterable[tuple[str, str | None, str | None, str | None]]) -> dict[str, tuple[str, str]]:
    """code -> (audience idnumber, cohort name) for elective courses given as (code, topic, stage, subject)."""
    return {code: (audience_idnumber(programme, topic, stage, subject),
                   audience_name(programme_name, topic, stage, subject))
            for code, topic, stage, subject in electives}



def forget_deleted_audiences(ctx: ApplyContext) -> bool:
    """Forget the audience cohorts an administrator deleted in Moodle; True when there were any.

    Moodle drops a deleted cohort's members and its self instances keep naming it, so nobody could enrol in
    those electives again while the store still held the cohort's id and its members as done. One read per
    roster run (a search for the programme's audience idnumbers, paged) finds them; their ref and stored
    memberships are forgotten, so this run makes the cohort again, points the electives' instances at it (the
    configuration names the cohort's id) and fills it. Reads only: an unchanged re-sync still writes nothing.
    """
    prefix = audience_idnumber(ctx.programme, None, None, None).removesuffix(f"{ANY}/{ANY}/{ANY}")
    with ctx.store.session() as s:
        known = {idn: mid for idn, mid in s.execute(select(MoodleRef.idnumber, MoodleRef.moodle_id).where(
            MoodleRef.kind == "cohort", MoodleRef.idnumber.startswith(prefix, autoescape=True)))}
    if not known:
        return False
    present = {str(c.get("idnumber") or ""): int(c["id"]) for c in ctx.client.iter_cohorts(prefix, perpage=SEARCH_PAGE)}
    gone = sorted(idn for idn, mid in known.items() if present.get(idn) != mid)
    if not gone:
        return False
    with ctx.store.session() as s:
        s.execute(delete(MoodleRef).where(MoodleRef.kind == "cohort", MoodleRef.idnumber.in_(gone)))
        s.execute(delete(CohortMember).where(CohortMember.programme == ctx.programme,
                                             CohortMember.cohort.in_(gone)))
    for idn in gone:
        ctx.refs.pop(("cohort", idn), None)
    ctx.outcome.notes.append(f"{len(gone)} audience cohort(s) no longer in Moodle (deleted by an administrator?): "
                             "made again and filled, their electives opened to them")
    return True


def forget_missing_instances(ctx: ApplyContext, moodle_ids: dict[str, int], audiences: dict[str, tuple[str, str]]
                             ) -> bool:
    """Forget the configuration of the electives whose self instance an administrator deleted or disabled in
    Moodle; True when there were any.

    The store remembered those courses as configured, so no later run sent them again and the electives stayed
    shut for good. One read per configured elective (core_enrol_get_course_enrolment_methods lists a course's
    enabled instances) finds them; their remembered configuration is dropped, so this run configures them again
    (the plugin adds or re-enables the instance). Reads only: an unchanged re-sync still writes nothing.
    """
    programme = ctx.programme
    with ctx.store.session() as s:
        known = {idn: selfid for idn, selfid in s.execute(select(MoodleRef.idnumber, MoodleRef.moodle_id).where(
            MoodleRef.kind == CONFIG_KIND, MoodleRef.idnumber.startswith(f"{programme}/", autoescape=True)))}
    # (code, course id, self instance id) of each configured elective; never configured ones (or an instance id
    # unknown) are sent by configure_courses anyway.
    configured = [(code, courseid, selfid) for code in sorted(audiences)
                  if (selfid := known.get(_config_key(programme, code))) and (courseid := moodle_ids.get(code))
                  is not None]
    gone: list[str] = []
    # One read per elective, concurrently (moodle.concurrency): at 500 electives, one at a time took ~45 s.
    for (code, _courseid, selfid), methods in ctx.read_each(
            lambda client, c: client.get_course_enrolment_methods(c[1]), configured):
        if isinstance(methods, (RecordNotFoundError, AccessDeniedError)):
            # This course only (deleted or hidden by an administrator): the rest of the run goes on.
            ctx.outcome.error(None, "", f"course {code}: could not read its enrolment methods: {refusal(methods)}")
            continue
        if isinstance(methods, MoodleError):
            raise methods  # Moodle failing as a whole: as the read raised it before
        if not any(int(m.get("id") or 0) == selfid for m in methods):
            gone.append(_config_key(programme, code))
    if not gone:
        return False
    with ctx.store.session() as s:
        s.execute(delete(MoodleRef).where(MoodleRef.kind == CONFIG_KIND, MoodleRef.idnumber.in_(gone)))
    ctx.outcome.notes.append(f"{len(gone)} elective(s) had lost their self enrolment in Moodle (deleted or disabled "
                             "by an administrator?): configured again")
    return True


def mend_welcome_messages(ctx: ApplyContext, moodle_ids: dict[str, int], audiences: dict[str, tuple[str, str]]
                          ) -> set[str]:
    """Turn off again the course welcome message an administrator turned back on in a managed course, before this
    run enrols anyone (else every teacher enrolled there from then on is mailed).

    configure_courses sends a course only when the catalog, topics or policy changed, so it never sees such a
    change. One read per run that has enrolments to make (local_creditbridge_get_courses_sending_welcome, every
    managed course, in lookups of 500) names the courses whose manual instance sends one; only those are
    configured again. A token that may not make the read (no moodle/course:enrolreview, a plugin older than
    1.2.2) is a note of the run, once: the run goes on as before. Returns the codes of the courses found sending
    that could not all be configured again (each refusal is a run error): enrolling there would mail the teacher.
    """
    codes = {courseid: code for code, courseid in moodle_ids.items()}
    try:
        sending = ctx.client.get_courses_sending_welcome(sorted(codes))
    except (FunctionNotInServiceError, UnknownFunctionError):
        ctx.outcome.notes.append(
            f"{WELCOME_COURSES_FUNCTION} is not in the token's service: a course welcome message an administrator "
            "turned back on in a managed course is not seen, and mails every teacher enrolled there (install "
            f"local_creditbridge version {PLUGIN_FUNCTIONS_SINCE[WELCOME_COURSES_FUNCTION]} and add the function, "
            "docs/moodle.md)")
        return set()
    except AccessDeniedError as e:
        ctx.outcome.notes.append(
            f"{WELCOME_COURSES_FUNCTION} was refused ({refusal(e)}): a course welcome message an administrator "
            "turned back on in a managed course is not seen, and mails every teacher enrolled there")
        return set()
    # The client has checked each entry's courseid is a number.
    found = sorted({codes[c["courseid"]] for c in sending if c["courseid"] in codes})
    if not found:
        return set()
    ctx.outcome.notes.append(f"{len(found)} managed course(s) sent a course welcome message again (turned back on "
                             f"by an administrator?): turned off before enrolling ({', '.join(found[:5])}"
                             f"{', ...' if len(found) > 5 else ''})")
    if configure_courses(ctx, {code: moodle_ids[code] for code in found},
                         {code: audiences[code] for code in found if code in audiences}, again=True):
        return set()
    # Which of them Moodle refused is in the run's errors; the answer does not say, so all of them wait.
    return set(found)
