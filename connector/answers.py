"""The shape of Moodle's answers to the read functions creditbridge calls: checked once, in the client, so an
answer of the wrong shape (a proxy's JSON, a broken plugin, a hostile site) is the client's ProtocolError,
which every command prints as `error: ...` with exit 2, and never an AttributeError or KeyError deep in a flow.

Only the outer shape is checked here (object or list of objects), plus what every command reads of the site
info; the flows still check the keys they use.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from creditbridge.connector.errors import ProtocolError

SITE_INFO = "core_webservice_get_site_info"

# Function -> what Moodle answers: an object (dict) or a list of objects. Functions not named here (writes,
# which answer null or per-item lists, and the plugin's readiness function, read leniently by readiness.py)
# are not checked.
ANSWER_SHAPES: dict[str, type] = {
    SITE_INFO: dict,
    "core_user_get_users_by_field": list,
    "core_user_get_users": dict,
    "core_course_get_categories": list,
    "core_course_get_courses_by_field": dict,
    "core_course_get_courses": list,
    "core_course_get_contents": list,
    "core_course_get_course_module": dict,
    "core_cohort_get_cohorts": list,
    "core_cohort_search_cohorts": dict,
    "core_cohort_get_cohort_members": list,
    "core_enrol_get_course_enrolment_methods": list,
    "core_enrol_get_enrolled_users": list,
    "core_enrol_get_users_courses": list,
    "core_completion_get_course_completion_status": dict,
    "core_completion_get_activities_completion_status": dict,
    "local_creditbridge_get_courses_sending_welcome": list,
}

_NAMES: dict[type, str] = {dict: "an object", list: "a list"}


class _Answer(BaseModel):
    # Lax: an XML answer carries every leaf as text ("2"); keys a later Moodle adds are kept, not refused.
    model_config = ConfigDict(extra="allow")


class _ServiceFunction(_Answer):
    name: str


class SiteInfo(_Answer):
    """What creditbridge reads of core_webservice_get_site_info (`moodle check`, `intake reconcile`)."""

    functions: list[_ServiceFunction]
    sitename: str | None = None
    siteurl: str | None = None
    username: str | None = None
    fullname: str | None = None
    userid: int | None = None
    release: str | None = None
    version: str | None = None


def _kind(value: Any) -> str:
    return "null" if value is None else _NAMES.get(type(value), f"a {type(value).__name__}")


def check_answer(function: str, answer: Any) -> Any:
    """`answer` unchanged, or ProtocolError saying where it is not what Moodle answers to `function`."""
    expected = ANSWER_SHAPES.get(function)
    if expected is None:
        return answer
    if not isinstance(answer, expected):
        raise ProtocolError(f"unexpected answer: {_NAMES[expected]} expected, got {_kind(answer)} "
                            "(is the URL a Moodle site?)", function=function)
    if isinstance(answer, list):
        for i, item in enumerate(answer):
            if not isinstance(item, dict):
                raise ProtocolError(f"unexpected answer: item {i} is {_kind(item)}, not an object",
                                    function=function)
    if function == SITE_INFO:
        try:
            SiteInfo.model_validate(answer)
        except ValidationError as e:
            err = e.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ProtocolError(f"unexpected answer at {where}: {err['msg']}", function=function) from None
    return answer
