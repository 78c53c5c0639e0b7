"""local_creditbridge_configure_enrolment: the plugin's function that sets up a managed course's enrolment
methods, which no core web service can (README of the recordings, "Facts about Moodle 4.5"). Contract in
local_creditbridge/classes/external/configure_enrolment.php, which does the same with Moodle's enrol API.

Per course: the manual instance's course welcome message (customint1) is set as asked (sync asks 0), and
creditbridge's own enrol_self instance (named `creditbridge`) is added or updated: only members of the given
cohort may enrol (customint5), new enrolments allowed (customint6 = 1), no welcome message (customint4 = 0).
Cohort 0 closes that instance to new enrolments (customint6 = 0); teachers already in stay enrolled.

local_creditbridge_get_courses_sending_welcome (read only, contract in
local_creditbridge/classes/external/get_courses_sending_welcome.php): which of the given courses have an enabled
manual instance whose customint1 sends a course welcome message; a course that does not exist is left out.
"""

from __future__ import annotations

from typing import Any

from creditbridge.connector.functions import CONFIGURE_ENROLMENT_FUNCTION, WELCOME_COURSES_FUNCTION
from creditbridge.sandbox import errors
from creditbridge.sandbox.functions import DV, Call, V, register
from creditbridge.sandbox.state import ROLES, STUDENT_ROLE
from creditbridge.sandbox.ws_readiness import PLUGIN_VERSION
from creditbridge.sandbox.wsformat import Multiple, Single

INSTANCE_NAME = "creditbridge"
ANSWER = Multiple(Single({"courseid": V("int"), "manualid": V("int"), "selfid": V("int"), "changed": V("int")}))


@register(CONFIGURE_ENROLMENT_FUNCTION, {"courses": Multiple(Single({
    "courseid": V("int"), "manualwelcome": DV("int", 0), "selfcohortid": DV("int", 0),
    "roleid": DV("int", STUDENT_ROLE)}))}, ANSWER, version=str(PLUGIN_VERSION))
def configure_enrolment(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    with st.transaction():
        for c in p["courses"]:
            courseid = c["courseid"]
            if st.get_course(courseid) is None:
                raise errors.missing_record("course", courseid)
            # validate_context() + require_capability() in the course context (the sandbox's roles are system-wide).
            call.require("moodle/course:enrolconfig")
            call.require("enrol/manual:config")
            cohortid = c["selfcohortid"]
            if c["manualwelcome"] not in (0, 1, 2, 3):
                raise errors.InvalidParameter(f"manualwelcome must be 0..3, got {c['manualwelcome']}")
            if c["roleid"] not in ROLES:
                raise errors.missing_record("role", c["roleid"])
            if cohortid and st.row("SELECT id FROM cohort WHERE id = ?", cohortid) is None:
                raise errors.missing_record("cohort", cohortid)
            manual = st.manual_instance(courseid)
            if manual is None:
                raise errors.moodle_exception("wsnoinstance", "Manual enrolment plugin instance doesn't exist or is "
                                              f"disabled for the course (id = {courseid})", module="enrol_manual")
            changed = 0
            if manual["customint1"] != c["manualwelcome"]:
                st.update("enrol", manual["id"], {"customint1": c["manualwelcome"]})
                changed = 1
            mine = st.row("SELECT * FROM enrol WHERE courseid = ? AND enrol = 'self' AND name = ? ORDER BY id",
                          courseid, INSTANCE_NAME)
            selfid = 0
            if cohortid or mine is not None:
                call.require("enrol/self:config")
                if not st.enrol_plugin_enabled("self"):
                    raise errors.moodle_exception("enrolselfdisabled", "Self enrolment (enrol_self) is disabled on "
                                                  "this site: enable it on Site administration > Plugins > "
                                                  "Enrolments > Manage enrol plugins", module="local_creditbridge")
                # Whoever self-enrols gets this role: only one the caller may assign (get_assignable_roles).
                if not call.is_admin and c["roleid"] not in st.assignable_roles(call.userid):
                    raise errors.moodle_exception("wsusercannotassign", "You don't have the permission to assign "
                                                  f"this role ({c['roleid']}) in this course ({courseid}).",
                                                  module="local_creditbridge")
                wanted = {"status": 0, "roleid": c["roleid"], "customint4": 0, "customint5": cohortid,
                          "customint6": 1 if cohortid else 0}
                if mine is None:
                    selfid = st.insert("enrol", {"enrol": "self", "courseid": courseid, "name": INSTANCE_NAME,
                                                 **wanted})
                    changed = 1
                else:
                    selfid = mine["id"]
                    if cohortid == 0:
                        wanted["customint5"] = mine["customint5"]  # closed: the audience it had is kept on record
                    diff = {k: v for k, v in wanted.items() if mine.get(k) != v}
                    if diff:
                        st.update("enrol", selfid, diff)
                        changed = 1
            out.append({"courseid": courseid, "manualid": manual["id"], "selfid": selfid, "changed": changed})
    return out


@register(WELCOME_COURSES_FUNCTION, {"courseids": Multiple(V("int"))},
          Multiple(Single({"courseid": V("int"), "manualid": V("int"), "welcome": V("int")})),
          version=str(PLUGIN_VERSION))
def get_courses_sending_welcome(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    for courseid in dict.fromkeys(p["courseids"]):
        if st.get_course(courseid) is None:
            continue  # deleted: it mails nobody (context_course::instance(IGNORE_MISSING))
        # validate_context() + require_capability() in the course context (the sandbox's roles are system-wide).
        call.require("moodle/course:enrolreview")
        manual = st.manual_instance(courseid)  # the enabled one, which enrol_manual_enrol_users enrols through
        if manual is not None and manual["customint1"]:
            out.append({"courseid": courseid, "manualid": manual["id"], "welcome": manual["customint1"]})
    return sorted(out, key=lambda c: (c["courseid"], c["manualid"]))
