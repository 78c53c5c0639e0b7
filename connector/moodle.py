"""MoodleClient: typed calls to Moodle's REST web services, with batching that survives a bad record.

Moodle runs a bulk write such as `core_user_create_users` in one transaction and, on a production
site, answers a bad record with the generic `invalidparameter`, naming nobody. So bulk writes go in
batches, a failed batch is halved until the bad records are isolated (each reported with Moodle's
reason) while the others go through, and `create_users` first looks up what would clash.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from creditbridge.connector.answers import check_answer
from creditbridge.connector.encoding import encode_params
from creditbridge.connector.errors import (
    AccessDeniedError,
    DuplicateError,
    InvalidParameterError,
    InvalidTokenError,
    MoodleError,
    ProtocolError,
    RecordNotFoundError,
    TransientError,
    UnknownFunctionError,
    error_for,
    mask_id_numbers,
)
from creditbridge.connector.functions import CONFIGURE_ENROLMENT_FUNCTION, WELCOME_COURSES_FUNCTION, is_read
from creditbridge.connector.retry import RetryPolicy
from creditbridge.connector.transport import Transport
from creditbridge.redact import mask_url
from creditbridge.settings.model import MoodleSettings

log = logging.getLogger(__name__)

Item = dict[str, Any]

# PHP drops every POST variable past max_input_vars (5000 is Moodle's recommended minimum) *before*
# Moodle runs, and Moodle then silently creates a truncated batch (fixtures: limits.json, 700 users
# -> 625 created). Requests are kept well under it.
MAX_FORM_FIELDS = 4500
LOOKUP_BATCH = 500

# What `enrol_manual_enrol_users` answers when the course welcome message cannot be mailed: the enrolments were
# saved before Moodle tried to send it (shared/fixtures/moodle-ws/README.md), so it is no refusal.
WELCOME_MAIL_FAILED = "Message was not sent."

# Without it Moodle hides other users' e-mail addresses from the token user: a lookup by e-mail answers [] for
# an address in use, and a lookup by username answers without an `email` key (roles.json).
VIEW_IDENTITY = "moodle/site:viewuseridentity"
BLIND_EMAIL_NOTE = (f"the e-mail pre-check is blind: the token user lacks the capability {VIEW_IDENTITY}, so Moodle "
                    "finds no account by e-mail and an address in use shows only when Moodle refuses the create "
                    "(grant it on Site administration > Users > Permissions > Define roles, and tick email in "
                    "Users > Permissions > User policies > Show user identity)")

# Errors about the call as a whole: halving the batch cannot help, so they stop the bulk write.
_WHOLE_CALL_ERRORS = (InvalidTokenError, AccessDeniedError, UnknownFunctionError, TransientError, ProtocolError)


@dataclass
class BatchResult:
    """Outcome of a bulk write: items Moodle accepted with its answer, items refused with the reason."""

    succeeded: list[tuple[Item, Any]] = field(default_factory=list)
    failed: list[tuple[Item, MoodleError]] = field(default_factory=list)
    calls: int = 0
    # `warnings` entries of an answer that name no item of the call (an unknown itemid, another item kind, a
    # message of a form not understood): never dropped, since Moodle may have refused something without saying
    # which record it was.
    warnings: list[MoodleError] = field(default_factory=list)
    # Things a person should know about records that did go through (e.g. a welcome mail Moodle could not send).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def merge(self, other: BatchResult) -> None:
        self.succeeded.extend(other.succeeded)
        self.failed.extend(other.failed)
        self.calls += other.calls
        self.warnings.extend(other.warnings)
        self.notes.extend(n for n in other.notes if n not in self.notes)

    def as_json(self) -> dict[str, Any]:
        return {"succeeded": len(self.succeeded), "failed": [
            {"item": _item_label(item), "error": type(e).__name__, "errorcode": e.errorcode, "message": e.message}
            for item, e in self.failed], "calls": self.calls,
            "warnings": [{"errorcode": e.errorcode, "message": e.message} for e in self.warnings]}


class MoodleClient:
    """One Moodle site, one token, one HTTP session (not shared: create one per thread)."""

    def __init__(self, settings: MoodleSettings, *, sleep: Callable[[float], None] = time.sleep,
                 max_form_fields: int = MAX_FORM_FIELDS) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.max_form_fields = max_form_fields
        self.write_calls = 0
        # Whether lookups show other users' e-mail addresses: None until an answer about another user tells.
        self.email_visible: bool | None = None
        self.transport = Transport(
            settings.url, settings.token.get_secret_value(), fmt=settings.format,
            connect_timeout=settings.connect_timeout_seconds, read_timeout=settings.timeout_seconds,
            policy=RetryPolicy(retries=settings.retries, backoff_seconds=settings.backoff_seconds),
            sleep=sleep,
        )

    @classmethod
    def from_url(cls, url: str, token: str, **opts: Any) -> MoodleClient:
        """`opts`: any MoodleSettings field (timeout_seconds, retries, batch_size, format...), plus `sleep`."""
        extra = {k: opts.pop(k) for k in ("sleep", "max_form_fields") if k in opts}
        return cls(MoodleSettings(url=url, token=token, **opts), **extra)

    def __repr__(self) -> str:
        return f"MoodleClient({mask_url(self.settings.url)!r})"

    def __enter__(self) -> MoodleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- generic -----------------------------------------------------------------------------------

    def call(self, function: str, /, **params: Any) -> Any:
        """Any function. Reads (get/search/view) are retried on transient errors; writes are not."""
        return self.call_with(function, params)

    def call_with(self, function: str, params: Mapping[str, Any], *, safe: bool | None = None) -> Any:
        """Like `call`, with params as a mapping; `safe=True` lets a write be retried (caller checked first)."""
        read = is_read(function)
        if not read:
            self.write_calls += 1
        answer = self.transport.post(function, encode_params(params), safe=read if safe is None else safe)
        return check_answer(function, answer)

    # -- site --------------------------------------------------------------------------------------

    def get_site_info(self) -> dict[str, Any]:
        return self.call("core_webservice_get_site_info")

    # -- users -------------------------------------------------------------------------------------

    def get_users_by_field(self, field: str, values: Iterable[Any]) -> list[Item]:
        """Users whose `field` (id, idnumber, username, email) is one of `values`; batched lookups."""
        out: list[Item] = []
        for chunk in _chunks(list(dict.fromkeys(values)), LOOKUP_BATCH):
            out.extend(self.call("core_user_get_users_by_field", field=field, values=chunk))
        if field != "email" and out:
            self._saw_users(out)
        return out

    def _saw_users(self, users: Sequence[Item]) -> None:
        visible = all("email" in u for u in users)
        if self.email_visible is None and not visible:
            log.warning("%s", BLIND_EMAIL_NOTE)
        if self.email_visible is not False:
            self.email_visible = visible

    def get_users(self, criteria: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict[str, Any]:
        """`criteria` {key: value} (keys id, lastname, firstname, idnumber, username, email, auth); `%` wildcards."""
        pairs = criteria.items() if isinstance(criteria, Mapping) else criteria
        return self.call("core_user_get_users", criteria=[{"key": k, "value": v} for k, v in pairs])

    def create_users(self, users: Sequence[Item], *, precheck: bool = True) -> BatchResult:
        """Create users; those clashing with an existing username/idnumber/email are failed without sending.

        Succeeded answers are Moodle's `{"id", "username"}`.
        """
        result = BatchResult()
        to_send = list(users)
        if precheck:
            to_send, clashes = self._precheck_users(to_send, result)
            result.failed.extend(clashes)
        sent = self._bulk("core_user_create_users", "users", to_send, per_item=_listed, recover=self._created_users)
        # Halving isolated a user Moodle refused with the bare `invalidparameter` of a production site: say what
        # that most likely is rather than leave "Invalid parameter value detected" alone.
        sent.failed = [(item, self._explained(item, e) if precheck else e) for item, e in sent.failed]
        if precheck and self.email_visible is None and sent.succeeded:
            # One read per client tells whether the pre-check can see e-mails: an account just made is another
            # user to the token user, shown with `email` only with VIEW_IDENTITY.
            before = self.transport.requests_made
            try:
                self.get_users_by_field("username", [sent.succeeded[0][0]["username"]])
            except MoodleError as e:  # only a hint: the accounts made must still reach the caller
                log.warning("could not tell whether the e-mail pre-check can see e-mails: %s", e)
            sent.calls += self.transport.requests_made - before
        result.merge(sent)
        if self.email_visible is False and BLIND_EMAIL_NOTE not in result.notes:
            result.notes.append(BLIND_EMAIL_NOTE)
        return result

    def _explained(self, item: Item, error: MoodleError) -> MoodleError:
        if error.errorcode != "invalidparameter" or error.debuginfo or not item.get("email"):
            return error
        if self.email_visible is False:
            cause = (f"the e-mail address is most likely used by another Moodle account already: the pre-check "
                     f"could not see it because the token user lacks {VIEW_IDENTITY}")
        else:
            cause = ("the e-mail address is most likely used by another Moodle account already (Moodle compares "
                     f"e-mails without letter case; a lookup cannot find it when the token user lacks "
                     f"{VIEW_IDENTITY}), or a value Moodle does not accept")
        return InvalidParameterError(f"{error.message}: {cause}", errorcode=error.errorcode,
                                     exception=error.exception, function=error.function, status=error.status)

    def _created_users(self, chunk: list[Item]) -> tuple[list[tuple[Item, Any]], list[Item]]:
        """After a create call timed out: which of `chunk` Moodle did create (by username), which not."""
        found = {u["username"]: u for u in self.get_users_by_field("username", [x["username"] for x in chunk])}
        done = [(item, {"id": found[k]["id"], "username": found[k]["username"]})
                for item in chunk if (k := str(item["username"]).lower()) in found]
        rest = [item for item in chunk if str(item["username"]).lower() not in found]
        return done, rest

    def _precheck_users(self, users: list[Item], result: BatchResult
                        ) -> tuple[list[Item], list[tuple[Item, MoodleError]]]:
        before = self.transport.requests_made
        taken: dict[str, dict[str, int]] = {}
        for fld in ("username", "idnumber", "email"):
            values = sorted({str(u[fld]) for u in users if u.get(fld) not in (None, "")})
            if fld == "email":
                # Moodle's e-mail lookup is case-sensitive, its duplicate check on create is not: ask for the
                # address as given and in lower case (what sync sends), compare without case.
                values = sorted({*values, *(v.strip().lower() for v in values)})
            found = self.get_users_by_field(fld, values) if values else []
            taken[fld] = {_norm(fld, str(u.get(fld))): u["id"] for u in found}
        result.calls += self.transport.requests_made - before
        keep: list[Item] = []
        clashes: list[tuple[Item, MoodleError]] = []
        seen: dict[str, set[str]] = {"username": set(), "idnumber": set(), "email": set()}
        for user in users:
            error: MoodleError | None = None
            for fld, code in (("username", "usernameexists"), ("idnumber", "idnumbertaken"), ("email", "emailexists")):
                value = user.get(fld)
                if value in (None, ""):
                    continue
                key = _norm(fld, str(value))
                if key in taken[fld]:
                    error = DuplicateError(f"{fld} already used by Moodle user id {taken[fld][key]}",
                                           errorcode=code, function="core_user_create_users")
                elif key in seen[fld]:
                    what = f"{fld} (letter case aside)" if fld == "email" else fld
                    error = DuplicateError(f"{what} repeated in the same request", errorcode=code,
                                           function="core_user_create_users")
                if error:
                    break
            if error is not None:
                clashes.append((user, error))
                continue
            for fld in seen:
                if user.get(fld) not in (None, ""):
                    seen[fld].add(_norm(fld, str(user[fld])))
            keep.append(user)
        return keep, clashes

    def update_users(self, users: Sequence[Item]) -> BatchResult:
        """Each user needs `id`. Moodle reports per-user problems as warnings; those become failures."""
        return self._bulk("core_user_update_users", "users", users, per_item=_warnings_by_id("user"))

    def delete_users(self, userids: Sequence[int]) -> BatchResult:
        items = [{"id": i} for i in userids]
        return self._bulk("core_user_delete_users", "userids", items, per_item=_nothing,
                          encode=lambda chunk: [i["id"] for i in chunk])

    # -- categories and courses --------------------------------------------------------------------

    def create_categories(self, categories: Sequence[Item]) -> BatchResult:
        """Succeeded answers are `{"id", "name"}`. Parents must exist first: send one tree level per call."""
        return self._bulk("core_course_create_categories", "categories", categories, per_item=_listed)

    def get_categories(self, criteria: Mapping[str, Any] | None = None, *, addsubcategories: bool | None = None
                       ) -> list[Item]:
        """criteria {key: value}: id, ids, name, parent, idnumber, visible, theme. Moodle adds sub-categories
        unless `addsubcategories=False`."""
        pairs = [{"key": k, "value": v} for k, v in (criteria or {}).items()]
        return self.call("core_course_get_categories", criteria=pairs, addsubcategories=addsubcategories)

    def create_courses(self, courses: Sequence[Item]) -> BatchResult:
        """Succeeded answers are `{"id", "shortname"}`."""
        return self._bulk("core_course_create_courses", "courses", courses, per_item=_listed)

    def update_courses(self, courses: Sequence[Item]) -> BatchResult:
        return self._bulk("core_course_update_courses", "courses", courses, per_item=_warnings_by_id("course"))

    def get_courses_by_field(self, field: str | None = None, value: Any = None) -> list[Item]:
        """field: id, ids (comma-separated), shortname, idnumber, category; none for every course."""
        answer = self.call("core_course_get_courses_by_field", field=field, value=value)
        return answer["courses"]

    def get_courses(self, ids: Sequence[int] | None = None) -> list[Item]:
        return self.call("core_course_get_courses", options={"ids": list(ids)} if ids else None)

    def get_course_contents(self, courseid: int, options: Mapping[str, Any] | None = None) -> list[Item]:
        opts = [{"name": k, "value": v} for k, v in (options or {}).items()] or None
        return self.call("core_course_get_contents", courseid=courseid, options=opts)

    def get_course_module(self, cmid: int) -> Item:
        """One course module (`cm`: id, course, modname, instance, idnumber, completion...); unlike
        `get_course_contents` it carries the activity's idnumber."""
        return self.call("core_course_get_course_module", cmid=cmid)["cm"]

    # -- cohorts -----------------------------------------------------------------------------------

    def create_cohorts(self, cohorts: Sequence[Item]) -> BatchResult:
        """Each cohort: categorytype {type: system|id|idnumber, value}, name, idnumber..."""
        return self._bulk("core_cohort_create_cohorts", "cohorts", cohorts, per_item=_listed)

    def get_cohorts(self, cohortids: Sequence[int] = ()) -> list[Item]:
        return self.call("core_cohort_get_cohorts", cohortids=list(cohortids))

    def search_cohorts(self, query: str, *, contextid: int = 1, includes: str = "all", page: int = 0,
                       perpage: int = 25) -> list[Item]:
        """Cohorts whose name, idnumber or description contain `query`, ordered by name, one page.

        Moodle passes the function's `limitfrom` to cohort_get_all_cohorts() as a page number (rows from
        limitfrom * limitnum), not as the row offset its name says: hence `page` and `perpage` here."""
        answer = self.call("core_cohort_search_cohorts", query=query, context={"contextid": contextid},
                           includes=includes, limitfrom=page, limitnum=perpage)
        cohorts = answer.get("cohorts")
        if not isinstance(cohorts, list) or not all(isinstance(c, dict) for c in cohorts):
            raise ProtocolError("unexpected answer: no list of cohort objects under `cohorts`",
                                function="core_cohort_search_cohorts")
        return cohorts

    def iter_cohorts(self, query: str, *, perpage: int = 200, contextid: int = 1) -> Iterator[Item]:
        """Every cohort `search_cohorts` finds for `query`, page after page (one read per page, only as far as the
        caller iterates). Stops at a short page, or at a page that brings no cohort not seen before (a site
        that ignores paging would otherwise be read for ever)."""
        seen: set[int] = set()
        page = 0
        while True:
            found = self.search_cohorts(query, contextid=contextid, page=page, perpage=perpage)
            try:
                ids = [int(c["id"]) for c in found]
            except (KeyError, TypeError, ValueError):
                raise ProtocolError("unexpected answer: a cohort without a numeric id",
                                    function="core_cohort_search_cohorts") from None
            new = [c for c, i in zip(found, ids, strict=True) if i not in seen]
            yield from new
            if len(found) < perpage or not new:
                return
            seen.update(ids)
            page += 1

    def add_cohort_members(self, members: Sequence[Item]) -> BatchResult:
        """Each member: cohorttype {type: id|idnumber, value}, usertype {type: id|username, value}.

        Moodle 4.5 refuses usertype idnumber (warning code 1).
        Unknown users/cohorts come back as warnings ("user username=x not exists") and become failures.
        """
        return self._bulk("core_cohort_add_cohort_members", "members", members, per_item=_cohort_warnings)

    def delete_cohort_members(self, members: Sequence[Item]) -> BatchResult:
        """Each member: {cohortid, userid}."""
        return self._bulk("core_cohort_delete_cohort_members", "members", members, per_item=_nothing)

    def get_cohort_members(self, cohortids: Sequence[int]) -> list[Item]:
        return self.call("core_cohort_get_cohort_members", cohortids=list(cohortids))

    # -- enrolment ---------------------------------------------------------------------------------

    def get_course_enrolment_methods(self, courseid: int) -> list[Item]:
        return self.call("core_enrol_get_course_enrolment_methods", courseid=courseid)

    def enrol_users(self, enrolments: Sequence[Item]) -> BatchResult:
        """Each enrolment: roleid, userid, courseid[, timestart, timeend, suspend]. Enrolling twice is harmless.

        A site that cannot mail the course welcome message answers WELCOME_MAIL_FAILED after saving the
        enrolments; they are then read back (one `core_enrol_get_users_courses` per user of the batch) and
        those Moodle holds count as succeeded, with a note in `BatchResult.notes`.
        """
        return self._bulk("enrol_manual_enrol_users", "enrolments", enrolments, per_item=_nothing,
                          saved=self._enrolled)

    def _enrolled(self, chunk: list[Item]) -> tuple[list[tuple[Item, Any]], list[Item]]:
        """Which enrolments of `chunk` Moodle holds (read back by user), which not."""
        courses: dict[int, set[int]] = {}
        for userid in dict.fromkeys(int(item["userid"]) for item in chunk):
            answer = self.get_users_courses(userid)
            try:
                courses[userid] = {int(c["id"]) for c in answer}
            except (KeyError, TypeError, ValueError) as e:
                raise ProtocolError(f"unexpected answer ({type(e).__name__}: {e}): a list of courses with id was "
                                    "expected", function="core_enrol_get_users_courses") from e
        done = [(item, None) for item in chunk if int(item["courseid"]) in courses[int(item["userid"])]]
        held = {id(item) for item, _ in done}
        return done, [item for item in chunk if id(item) not in held]

    def configure_enrolment(self, courses: Sequence[Item]) -> BatchResult:
        """local_creditbridge_configure_enrolment. Each course: courseid, manualwelcome (customint1 of its manual
        instance, 0 = no course welcome message), selfcohortid (creditbridge's enrol_self instance open to that
        cohort's members; 0 = closed to new enrolments), roleid. Answers {courseid, manualid, selfid, changed}."""
        return self._bulk(CONFIGURE_ENROLMENT_FUNCTION, "courses", courses, per_item=_listed)

    def get_courses_sending_welcome(self, courseids: Iterable[int]) -> list[Item]:
        """local_creditbridge_get_courses_sending_welcome (read only): which of these courses have an enabled manual
        instance that mails a course welcome message, each {courseid, manualid, welcome}; a course Moodle no
        longer has is left out. Batched lookups. An entry whose fields are no numbers is a ProtocolError: the
        caller acts on these course ids (configures them again, holds back enrolments)."""
        out: list[Item] = []
        for chunk in _chunks(list(dict.fromkeys(courseids)), LOOKUP_BATCH):
            for item in self.call(WELCOME_COURSES_FUNCTION, courseids=chunk):
                try:
                    out.append({key: int(item[key]) for key in ("courseid", "manualid", "welcome")})
                except (KeyError, TypeError, ValueError):
                    raise ProtocolError(f"unexpected answer: an entry without a numeric courseid, manualid and "
                                        f"welcome: {str(item)[:200]}", function=WELCOME_COURSES_FUNCTION) from None
        return out

    def unenrol_users(self, enrolments: Sequence[Item]) -> BatchResult:
        """Each enrolment: userid, courseid[, roleid]."""
        return self._bulk("enrol_manual_unenrol_users", "enrolments", enrolments, per_item=_nothing)

    def get_enrolled_users(self, courseid: int, *, page_size: int = 0, **options: Any) -> list[Item]:
        """Enrolled users; `options` as Moodle's (userfields=[...], onlyactive=True, withcapability=...).

        With `page_size`, pages through limitfrom/limitnumber so a large course is read in parts.
        """
        def opts(extra: Mapping[str, Any]) -> list[dict[str, Any]] | None:
            merged = {**extra, **{k: v for k, v in options.items() if k not in extra}}
            return [{"name": k, "value": ",".join(v) if isinstance(v, list | tuple) else v}
                    for k, v in merged.items()] or None

        if not page_size:
            return self.call("core_enrol_get_enrolled_users", courseid=courseid, options=opts({}))
        out: list[Item] = []
        while True:
            page = self.call("core_enrol_get_enrolled_users", courseid=courseid,
                             options=opts({"limitfrom": len(out), "limitnumber": page_size}))
            out.extend(page)
            if len(page) < page_size:
                return out

    def get_users_courses(self, userid: int) -> list[Item]:
        return self.call("core_enrol_get_users_courses", userid=userid)

    # -- completion --------------------------------------------------------------------------------

    def get_course_completion_status(self, courseid: int, userid: int) -> dict[str, Any]:
        return self.call("core_completion_get_course_completion_status", courseid=courseid, userid=userid)

    def get_activities_completion_status(self, courseid: int, userid: int) -> dict[str, Any]:
        return self.call("core_completion_get_activities_completion_status", courseid=courseid, userid=userid)

    def update_activity_completion_status_manually(self, cmid: int, completed: bool) -> dict[str, Any]:
        return self.call("core_completion_update_activity_completion_status_manually", cmid=cmid,
                         completed=completed)

    def mark_course_self_completed(self, courseid: int) -> dict[str, Any]:
        return self.call("core_completion_mark_course_self_completed", courseid=courseid)

    def override_activity_completion_status(self, userid: int, cmid: int, newstate: int) -> dict[str, Any]:
        return self.call("core_completion_override_activity_completion_status", userid=userid, cmid=cmid,
                         newstate=newstate)

    # -- bulk writes -------------------------------------------------------------------------------

    def _bulk(self, function: str, key: str, items: Sequence[Item], *, per_item: _PerItem,
              encode: Callable[[list[Item]], Any] | None = None, recover: _Recover | None = None,
              saved: _Recover | None = None) -> BatchResult:
        result = BatchResult()
        try:
            for chunk in _chunks(list(items), self.batch_size):
                self._send(function, key, chunk, per_item, encode or (lambda c: c), result, recover=recover,
                           saved=saved)
        except MoodleError as e:
            # Whole-call failure (token, service, network): earlier batches did go through; say which.
            e.partial = result
            raise
        if result.failed:
            log.info("%s: %d ok, %d refused, %d calls", function, len(result.succeeded), len(result.failed),
                     result.calls)
        return result

    def _send(self, function: str, key: str, chunk: list[Item], per_item: _PerItem,
              encode: Callable[[list[Item]], Any], result: BatchResult, *, recover: _Recover | None = None,
              saved: _Recover | None = None, attempt: int = 0) -> None:
        fields = encode_params({key: encode(chunk)})
        if len(fields) + 3 > self.max_form_fields and len(chunk) > 1:
            half = len(chunk) // 2
            self._send(function, key, chunk[:half], per_item, encode, result, recover=recover, saved=saved)
            self._send(function, key, chunk[half:], per_item, encode, result, recover=recover, saved=saved)
            return
        self.write_calls += 1
        result.calls += 1
        try:
            answer = self.transport.post(function, fields, safe=False)
        except TransientError as e:
            # The write may or may not have happened. Where a lookup can tell, check, then resend the rest.
            if recover is None or not self.transport.policy.should_retry(attempt, e, safe=True):
                raise
            self.transport.sleep(self.transport.policy.wait(attempt, e.retry_after))
            before = self.transport.requests_made
            done, rest = recover(chunk)
            result.calls += self.transport.requests_made - before
            log.warning("%s: %s; %d of %d were applied, resending %d", function, e.message, len(done), len(chunk),
                        len(rest))
            result.succeeded.extend(done)
            if rest:
                self._send(function, key, rest, per_item, encode, result, recover=recover, saved=saved,
                           attempt=attempt + 1)
            return
        except _WHOLE_CALL_ERRORS:
            raise
        except MoodleError as e:
            if saved is not None and e.errorcode == WELCOME_MAIL_FAILED:
                # Saved, then the mail failed: what Moodle holds is a success, not a refusal to report.
                before = self.transport.requests_made
                done, rest = saved(chunk)
                result.calls += self.transport.requests_made - before
                if done:
                    log.warning("%s: %d saved, but Moodle could not send the course welcome message", function,
                                len(done))
                    result.succeeded.extend(done)
                    note = (f"Moodle saved the enrolments but could not mail the course welcome message "
                            f"({WELCOME_MAIL_FAILED!r}): turn welcome messages off for the managed courses "
                            "(docs/moodle.md)")
                    if note not in result.notes:
                        result.notes.append(note)
                    if rest:
                        self._send(function, key, rest, per_item, encode, result, recover=recover, saved=saved)
                    return
            if len(chunk) == 1:
                result.failed.append((chunk[0], e))
                return
            # One transaction per call: nothing of this chunk was written. Halve to find the bad records.
            log.debug("%s: batch of %d refused (%s); splitting", function, len(chunk), e.errorcode)
            half = len(chunk) // 2
            self._send(function, key, chunk[:half], per_item, encode, result, recover=recover, saved=saved)
            self._send(function, key, chunk[half:], per_item, encode, result, recover=recover, saved=saved)
            return
        outcomes, unmatched = per_item(function, chunk, answer)
        if unmatched and len(chunk) == 1 and not isinstance(outcomes[0], MoodleError):
            # The call had one record: a warning that does not name it can only be about it.
            outcomes, unmatched = [unmatched[0]], unmatched[1:]
        for item, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, MoodleError):
                result.failed.append((item, outcome))
            else:
                result.succeeded.append((item, outcome))
        for warning in unmatched:
            log.warning("%s: a warning that names no item of the call: %s", function, warning)
        result.warnings.extend(unmatched)


# (outcome per item: the answer or a MoodleError; warnings of the answer that name no item of the chunk)
_PerItem = Callable[[str, list[Item], Any], tuple[list[Any], list[MoodleError]]]
_Recover = Callable[[list[Item]], tuple[list[tuple[Item, Any]], list[Item]]]


def _listed(function: str, chunk: list[Item], answer: Any) -> tuple[list[Any], list[MoodleError]]:
    """Create functions answer one record per item, in order."""
    if not isinstance(answer, list):
        raise ProtocolError(f"expected a list answer, got {type(answer).__name__}", function=function)
    missing = ProtocolError(
        f"Moodle answered {len(answer)} records for {len(chunk)} sent (request cut by PHP's max_input_vars?)",
        function=function)
    return [answer[i] if i < len(answer) else missing for i in range(len(chunk))], []


def _nothing(function: str, chunk: list[Item], answer: Any) -> tuple[list[Any], list[MoodleError]]:
    """Functions answering `null` (or only warnings): per-item warnings by id if any, else all done."""
    return _warnings_by_id("")(function, chunk, answer)


def _warning_error(function: str, w: Mapping[str, Any]) -> MoodleError:
    return error_for(str(w.get("warningcode") or "") or None, str(w.get("message", "")), function=function)


def _answer_warnings(answer: Any) -> list[Mapping[str, Any]]:
    warnings = answer.get("warnings") if isinstance(answer, dict) else None
    return [w for w in warnings if isinstance(w, Mapping)] if isinstance(warnings, list) else []


def _warnings_by_id(kind: str) -> _PerItem:
    def per_item(function: str, chunk: list[Item], answer: Any) -> tuple[list[Any], list[MoodleError]]:
        ids = {str(item.get("id")) for item in chunk}
        by_id: dict[str, Mapping[str, Any]] = {}
        unmatched: list[MoodleError] = []
        for w in _answer_warnings(answer):
            key = str(w.get("itemid"))
            if (not kind or w.get("item") in (kind, None)) and key in ids:
                # Moodle reports the first failing check per record; keep that one.
                by_id.setdefault(key, w)
            else:
                unmatched.append(_warning_error(function, w))
        out: list[Any] = []
        for item in chunk:
            found = by_id.get(str(item.get("id")))
            out.append(_warning_error(function, found) if found else None)
        return out, unmatched
    return per_item


_COHORT_WARNING = re.compile(r"^(user|cohort) (\w+)=(.*) not exists$")
# Code 3: the user already is a member (cohorts.json); what the call wanted is there, so it is no failure.
_ALREADY_MEMBER = re.compile(r"^record already exists: cohort\(id=\d+ id=\d+\)$")


def _cohort_warnings(function: str, chunk: list[Item], answer: Any) -> tuple[list[Any], list[MoodleError]]:
    missing: set[tuple[str, str, str]] = set()
    unmatched: list[MoodleError] = []
    for w in _answer_warnings(answer):
        m = _COHORT_WARNING.match(str(w.get("message", "")))
        if m:
            missing.add((m.group(1), m.group(2), m.group(3)))
        elif not _ALREADY_MEMBER.match(str(w.get("message", ""))):
            unmatched.append(_warning_error(function, w))
    out: list[Any] = []
    for item in chunk:
        u, c = item.get("usertype", {}), item.get("cohorttype", {})
        for kind, ref in (("user", u), ("cohort", c)):
            if (kind, str(ref.get("type")), str(ref.get("value"))) in missing:
                out.append(RecordNotFoundError(f"{kind} {ref.get('type')}={ref.get('value')} not exists",
                                               errorcode="invalidrecord", function=function))
                break
        else:
            out.append(None)
    return out, unmatched


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _norm(field: str, value: str) -> str:
    # Moodle stores usernames lower-case and compares emails case-insensitively.
    return value.strip().lower() if field in ("username", "email") else value.strip()


def _item_label(item: Item) -> str:
    for key in ("username", "idnumber", "shortname", "name", "id"):
        if item.get(key) not in (None, ""):
            # An idnumber may be a resident ID number (sync.send_id_number): labels end up in reports and logs.
            return mask_id_numbers(f"{key}={item[key]}")
    return "item"
