"""The web-service functions creditbridge calls, each with why; `moodle check` compares them with the service."""

from __future__ import annotations

# Add every one of these to the site's external service (Site administration > Server > Web services
# > External services > Functions).
REQUIRED_FUNCTIONS: dict[str, str] = {
    "core_webservice_get_site_info": "check the token and list the service's functions",
    "core_user_create_users": "create teacher accounts from the roster",
    "core_user_update_users": "update names, schools and custom profile fields; suspend leavers",
    "core_user_get_users_by_field": "find existing accounts by username, idnumber or email before creating",
    "core_user_get_users": "search accounts by criteria during reconciliation",
    "core_course_create_categories": "create the programme/stage/subject category tree",
    "core_course_get_categories": "find existing categories by idnumber",
    "core_course_create_courses": "create catalog courses with their credit-hour custom fields",
    "core_course_update_courses": "keep titles, hours and categories in step with the catalog",
    "core_course_get_courses_by_field": "find catalog courses by idnumber",
    "core_course_get_contents": "list a course's activities (cmid, name, module) for reconciliation",
    "core_course_get_course_module": "read an activity's idnumber (reconciliation of activity completions)",
    "core_cohort_create_cohorts": "create school, county and city cohorts",
    "core_cohort_get_cohorts": "read cohorts by id",
    "core_cohort_search_cohorts": "find existing cohorts by idnumber",
    "core_cohort_add_cohort_members": "put teachers in their school/county/city cohorts",
    "core_cohort_delete_cohort_members": "take teachers out of cohorts they left",
    "core_cohort_get_cohort_members": "diff cohort membership",
    "core_enrol_get_course_enrolment_methods": "check the course has a manual enrolment instance",
    "enrol_manual_enrol_users": "enrol teachers in required courses and assigned lesson cases",
    "enrol_manual_unenrol_users": "remove withdrawn lesson-case assignments",
    "core_enrol_get_enrolled_users": "diff enrolments and list learners to reconcile",
    "core_enrol_get_users_courses": "list one teacher's courses",
    "core_completion_get_course_completion_status": "poll course completion (reconciliation)",
    "core_completion_get_activities_completion_status": "poll activity completion (reconciliation)",
    "local_creditbridge_configure_enrolment": "open electives to their teachers by cohort-restricted self "
                                              "enrolment and turn welcome messages of managed courses off",
    "local_creditbridge_get_courses_sending_welcome": "find the managed courses whose welcome message an "
                                                      "administrator turned back on, before enrolling anyone",
}

# Functions that change nothing on the site: safe to retry after a timeout or 5xx.
_READ_VERBS = ("_get_", "_search_", "_view_")


def is_read(function: str) -> bool:
    """Moodle names functions component_verb_object; reads are get/search/view."""
    return any(verb in function for verb in _READ_VERBS)


# The capabilities the token user's system role needs, each with why (docs/moodle.md lists the same; the
# plugin's readiness function reports has_capability() for each in the system context).
REQUIRED_CAPABILITIES: dict[str, str] = {
    "webservice/rest:use": "use the REST protocol at all",
    "moodle/user:create": "create teacher accounts",
    "moodle/user:update": "update teacher accounts, suspend leavers",
    "moodle/user:delete": "delete accounts (never done by sync, but checked by Moodle's user functions)",
    "moodle/user:viewdetails": "look accounts up by username / idnumber",
    "moodle/user:viewalldetails": "read all profile fields of an account",
    "moodle/user:viewhiddendetails": "read idnumbers and hidden profile fields",
    "moodle/site:viewuseridentity": "look accounts up by email (without it Moodle answers [] and hides email)",
    "moodle/course:create": "create catalog courses",
    "moodle/course:update": "update catalog courses",
    "moodle/course:changefullname": "rename a course when the catalog title changes",
    "moodle/course:changecategory": "move a course when the catalog moves it",
    "moodle/course:changesummary": "change a course summary",
    "moodle/course:view": "read courses the user is not enrolled in",
    "moodle/course:viewhiddencourses": "read hidden courses",
    "moodle/category:manage": "create the programme/stage/subject categories",
    "moodle/category:viewhiddencategories": "read hidden categories",
    "moodle/cohort:manage": "create school/county/city cohorts",
    "moodle/cohort:assign": "add and remove cohort members",
    "moodle/cohort:view": "read cohorts and their members",
    "enrol/manual:enrol": "enrol teachers",
    "enrol/manual:unenrol": "remove withdrawn enrolments",
    "moodle/role:assign": "give the student role on enrolment (student must be assignable by this role)",
    "moodle/course:viewparticipants": "list enrolled users",
    "moodle/course:enrolreview": "read enrolments and enrolment methods (and which managed courses send a welcome "
                                 "message again)",
    "report/completion:view": "read other users' completion (reconciliation)",
    "moodle/course:overridecompletion": "read and override activity completion (reconciliation)",
    "local/creditbridge:viewreadiness": "let `creditbridge moodle check` read the site's readiness",
    "moodle/course:enrolconfig": "configure the enrolment methods of managed courses",
    "enrol/manual:config": "turn the course welcome message of manual enrolment off in managed courses",
    "enrol/self:config": "open electives by self enrolment limited to their teachers' cohort",
}

# The plugin's read-only readiness function (local_creditbridge/db/services.php). Optional: a service
# without it makes `moodle check` fall back to what core functions can tell.
READINESS_FUNCTION = "local_creditbridge_get_site_readiness"

# The plugin's function that configures a managed course's enrolment methods (no core function can add or
# configure an enrol_self instance), and the plugin version that brought it.
CONFIGURE_ENROLMENT_FUNCTION = "local_creditbridge_configure_enrolment"
CONFIGURE_ENROLMENT_SINCE = 2026120601

# The plugin's read-only function naming the managed courses whose manual instance sends a course welcome message
# (an administrator turned it back on after configure_enrolment turned it off), and the plugin version that brought
# it. Sync asks it once before a run's first enrolment (sync/electives.py, mend_welcome_messages).
WELCOME_COURSES_FUNCTION = "local_creditbridge_get_courses_sending_welcome"
WELCOME_COURSES_SINCE = 2026120603

# The plugin's functions sync needs, each with the plugin version that brought it (what `moodle check` says to
# install when one is missing from the service).
PLUGIN_FUNCTIONS_SINCE: dict[str, int] = {
    CONFIGURE_ENROLMENT_FUNCTION: CONFIGURE_ENROLMENT_SINCE,
    WELCOME_COURSES_FUNCTION: WELCOME_COURSES_SINCE,
}
