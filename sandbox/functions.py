"""The registry of emulated web-service functions and the per-call context handed to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.state import ADMIN_ID, TOKEN_ADMIN, SandboxState
from creditbridge.sandbox.wsformat import Multiple, Single, Value, dflt, opt

MOODLE_RELEASE = "4.5.5+ (Build: 20250613)"
MOODLE_VERSION = "2024100705.01"
ENROL_MANUAL_VERSION = "2024100700"

# Human names of the capabilities the emulated functions check (required_capability_exception's message).
CAPABILITY_NAMES = {
    "moodle/user:create": "Create users", "moodle/user:update": "Update user profiles",
    "moodle/user:delete": "Delete users", "moodle/user:viewdetails": "View user profiles",
    "moodle/category:manage": "Manage course categories", "moodle/course:create": "Create courses",
    "moodle/course:update": "Update course settings", "moodle/course:delete": "Delete courses",
    "moodle/course:view": "View courses without participation",
    "moodle/cohort:manage": "Create, delete and move cohorts",
    "moodle/cohort:assign": "Add and remove cohort members", "moodle/cohort:view": "View site-wide cohorts",
    "enrol/manual:enrol": "Enrol users", "enrol/manual:unenrol": "Unenrol users from the course",
    "moodle/course:enrolreview": "Review course enrolments",
    "moodle/course:overridecompletion": "Override activity completion status",
    "report/completion:view": "View course completion report",
    "moodle/course:changefullname": "Change course full name", "moodle/course:changecategory": "Change course category",
    "moodle/course:changesummary": "Change course summary", "moodle/course:changeshortname": "Change course short name",
    "moodle/course:changeidnumber": "Change course ID number", "moodle/course:visibility": "Hide/show courses",
    "moodle/site:viewuseridentity": "See full user identity in lists",
    "local/creditbridge:viewreadiness": "View the creditbridge site readiness",
    "moodle/course:enrolconfig": "Configure enrol instances in courses",
    "enrol/manual:config": "Configure manual enrol instances", "enrol/self:config": "Configure self enrol instances",
}


@dataclass
class Call:
    """One request: the site, the token's user and what that token may do."""

    state: SandboxState
    userid: int
    kind: str
    wwwroot: str
    debug: bool
    sitename: str = "Sandbox"

    # The token user's capabilities, read once per request.
    _capabilities: set[str] | None = field(default=None, init=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.kind == TOKEN_ADMIN or self.userid == ADMIN_ID

    def has(self, capability: str) -> bool:
        """has_capability() in the system context: an administrator may do everything; anyone else what their
        system roles allow (a learner's token holds none of the capabilities the functions check)."""
        if self.is_admin:
            return True
        if self._capabilities is None:
            self._capabilities = self.state.capabilities_of(self.userid)
        return capability in self._capabilities

    def require(self, capability: str) -> None:
        if not self.has(capability):
            raise errors.no_permission(CAPABILITY_NAMES.get(capability, capability), capability)

    def now(self) -> int:
        return self.state.now()

    @property
    def themerev(self) -> str:
        return self.state.config("themerev", "1")


@dataclass
class Function:
    name: str
    params: Single
    returns: Any
    handler: Callable[[Call, dict[str, Any]], Any]
    version: str = MOODLE_VERSION
    returns_nothing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


FUNCTIONS: dict[str, Function] = {}

# Functions that exist in Moodle 4.5 but are not in the sandbox's service: calling one is an access
# exception, not an unknown function (as on the recorded site).
KNOWN_OUTSIDE_SERVICE = {
    "core_group_create_groups", "core_group_add_group_members", "core_group_get_course_groups",
    "core_course_delete_categories", "core_course_update_categories", "core_course_duplicate_course",
    "core_cohort_delete_cohorts", "core_cohort_update_cohorts", "core_role_assign_roles",
    "core_role_unassign_roles", "core_grades_get_grades", "gradereport_user_get_grade_items",
    "core_enrol_get_enrolled_users_with_capability", "core_webservice_get_site_info_extra",
    "core_message_send_instant_messages", "core_notes_create_notes", "enrol_self_enrol_user",
    "mod_assign_get_assignments", "mod_quiz_get_quizzes_by_courses", "core_completion_get_course_completion_status_x",
    "core_user_get_course_user_profiles", "core_user_update_picture", "core_course_get_categories_x",
}


def register(name: str, params: dict[str, Any], returns: Any = None, *, version: str = MOODLE_VERSION,
             returns_nothing: bool = False) -> Callable[[Callable[[Call, dict[str, Any]], Any]],
                                                         Callable[[Call, dict[str, Any]], Any]]:
    def wrap(fn: Callable[[Call, dict[str, Any]], Any]) -> Callable[[Call, dict[str, Any]], Any]:
        FUNCTIONS[name] = Function(name, Single(params), returns, fn, version, returns_nothing)
        return fn
    return wrap


# Shared description pieces.
def V(ptype: str) -> Value:
    return Value(ptype)


def OV(ptype: str) -> Value:
    return opt(Value(ptype))


def DV(ptype: str, default: Any) -> Value:
    return dflt(Value(ptype), default)


WARNINGS = Multiple(Single({"item": OV("text"), "itemid": OV("int"), "warningcode": V("alphanum"),
                            "message": V("raw")}))
WARNINGS_OPTIONAL = opt(Multiple(Single({"item": OV("text"), "itemid": OV("int"), "warningcode": V("alphanum"),
                                         "message": V("raw")})))
