"""core_webservice_get_site_info: who the token belongs to and which functions its service holds."""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context

from creditbridge.sandbox.functions import FUNCTIONS, MOODLE_RELEASE, MOODLE_VERSION, OV, Call, V, register
from creditbridge.sandbox.state import ADMIN_ID
from creditbridge.sandbox.wsformat import Multiple, Single, dflt, opt

ADVANCED_FEATURES = [("usecomments", 1), ("usetags", 1), ("enablenotes", 1), ("messaging", 1), ("enableblogs", 1),
                     ("enablecompletion", 1), ("enablebadges", 1), ("messagingallusers", 0),
                     ("enablecustomreports", 1), ("enableglobalsearch", 0), ("mnet_dispatcher_mode", 0),
                     ("enablecompetencies", 1)]

SITE_INFO_DESC = Single({
    "sitename": V("raw"), "username": V("raw"), "firstname": V("text"), "lastname": V("text"),
    "fullname": V("text"), "lang": V("lang"), "userid": V("int"), "siteurl": V("raw"),
    "userpictureurl": V("url"), "functions": Multiple(Single({"name": V("raw"), "version": V("text")})),
    "downloadfiles": OV("int"), "uploadfiles": OV("int"), "release": OV("text"), "version": OV("text"),
    "mobilecssurl": OV("url"), "advancedfeatures": opt(Multiple(Single({"name": V("alphanumext"),
                                                                         "value": V("int")}))),
    "usercanmanageownfiles": OV("bool"), "userquota": OV("int"), "usermaxuploadfilesize": OV("int"),
    "userhomepage": OV("int"), "userhomepageurl": OV("url"), "userprivateaccesskey": OV("alphanum"),
    "siteid": OV("int"), "sitecalendartype": OV("plugin"), "usercalendartype": OV("plugin"),
    "userissiteadmin": OV("bool"), "theme": OV("plugin"), "limitconcurrentlogins": OV("int"),
    "usersessionscount": OV("int"), "policyagreed": OV("int")})

# The order of the recorded service ("Roster connector"); functions registered later follow.
SERVICE_ORDER = [
    "core_webservice_get_site_info", "core_user_create_users", "core_user_update_users",
    "core_user_get_users_by_field", "core_user_get_users", "core_user_delete_users",
    "core_course_create_categories", "core_course_get_categories", "core_course_create_courses",
    "core_course_update_courses", "core_course_get_courses_by_field", "core_course_get_courses",
    "core_course_get_contents", "core_course_delete_courses", "core_cohort_create_cohorts",
    "core_cohort_add_cohort_members", "core_cohort_search_cohorts", "core_cohort_get_cohorts",
    "core_cohort_get_cohort_members", "core_cohort_delete_cohort_members", "enrol_manual_enrol_users",
    "enrol_manual_unenrol_users", "core_enrol_get_enrolled_users", "core_enrol_get_users_courses",
    "core_enrol_get_course_enrolment_methods", "core_completion_get_course_completion_status",
    "core_completion_get_activities_completion_status", "core_completion_mark_course_self_completed",
    "core_completion_update_activity_completion_status_manually",
    "core_completion_override_activity_completion_status"]


def service_functions() -> list[str]:
    """The functions site info lists: the recorded service's, then those registered later (such as
    core_course_get_course_module, which creditbridge's own service needs). `SANDBOX_SERVICE` (a list of
    names) lists exactly those instead: the contract tests replay the recorded site's service."""
    listed = has_app_context() and current_app.config.get("SANDBOX_SERVICE")
    if listed:
        return [n for n in listed if n in FUNCTIONS]
    return [n for n in SERVICE_ORDER if n in FUNCTIONS] + sorted(set(FUNCTIONS) - set(SERVICE_ORDER))


@register("core_webservice_get_site_info", {"serviceshortnames": dflt(Multiple(V("alphanumext")), [])},
          SITE_INFO_DESC)
def get_site_info(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    user = call.state.row("SELECT * FROM user WHERE id = ?", call.userid)
    assert user is not None
    return {
        "sitename": call.sitename, "username": user["username"], "firstname": user["firstname"],
        "lastname": user["lastname"], "fullname": f"{user['firstname']} {user['lastname']}", "lang": user["lang"],
        "userid": user["id"], "siteurl": call.wwwroot,
        "userpictureurl": f"{call.wwwroot}/theme/image.php/boost/core/{call.themerev}/u/f1",
        "functions": [{"name": n, "version": FUNCTIONS[n].version} for n in service_functions()],
        "downloadfiles": 0, "uploadfiles": 0, "release": MOODLE_RELEASE, "version": MOODLE_VERSION,
        "mobilecssurl": "", "advancedfeatures": [{"name": n, "value": v} for n, v in ADVANCED_FEATURES],
        "usercanmanageownfiles": True, "userquota": 0, "usermaxuploadfilesize": -1, "userhomepage": 1,
        "userprivateaccesskey": call.state.private_key(user["id"]), "siteid": 1, "sitecalendartype": "gregorian",
        "usercalendartype": "gregorian", "userissiteadmin": user["id"] == ADMIN_ID, "theme": "boost",
        "limitconcurrentlogins": 0, "policyagreed": 0}
