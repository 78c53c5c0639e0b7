"""core_completion_*: course and activity completion, manual and self completion, overrides."""

from __future__ import annotations

from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.functions import OV, WARNINGS, Call, V, register
from creditbridge.sandbox.state import Row
from creditbridge.sandbox.wsformat import Multiple, Single, opt

COMPLETION_DESC = Single({
    "completionstatus": Single({
        "completed": V("bool"), "aggregation": V("int"),
        "completions": Multiple(Single({
            "type": V("int"), "title": V("text"), "status": V("text"), "complete": V("bool"),
            "timecompleted": V("int"),
            "details": Single({"type": V("raw"), "criteria": V("raw"), "requirement": V("raw"),
                               "status": V("raw")})}))}),
    "warnings": WARNINGS})


def _course(call: Call, courseid: int) -> Row:
    course = call.state.row("SELECT * FROM course WHERE id = ?", courseid)
    if course is None:
        raise errors.missing_record("course", courseid)
    return course


def _user(call: Call, userid: int) -> Row:
    user = call.state.row("SELECT * FROM user WHERE id = ? AND deleted = 0", userid)
    if user is None:
        raise errors.invalid_user()
    if user["suspended"]:
        raise errors.moodle_exception("suspended", "This account has been suspended.")
    return user


def _can_view(call: Call, course: Row, userid: int) -> None:
    """completion_can_view_data(): completion on for the course, and it is your own data or you may view reports."""
    if not course["enablecompletion"] or (userid != call.userid and not call.has("report/completion:view")):
        raise errors.moodle_exception("cannotviewreport", "You cannot view this report")


def _cm(call: Call, cmid: int) -> Row:
    cm = call.state.get_course_module(cmid)
    if cm is None:
        raise errors.missing_record("course_modules", cmid)
    return cm


@register("core_completion_get_course_completion_status", {"courseid": V("int"), "userid": V("int")},
          COMPLETION_DESC)
def get_course_completion_status(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    course = _course(call, p["courseid"])
    user = _user(call, p["userid"])
    _can_view(call, course, user["id"])
    if not st.is_tracked_user(course["id"], user["id"]):
        if user["id"] == call.userid:
            raise errors.moodle_exception("notenroled", "You are not enrolled in this course", module="completion")
        raise errors.moodle_exception("usernotenroled", "User is not enrolled in this course", module="completion")
    crits = st.criteria(course["id"])
    if not crits:
        raise errors.moodle_exception("nocriteriaset", "No completion criteria set for this course",
                                      module="completion")
    done = {r["criteriaid"]: r["timecompleted"] for r in st.rows(
        "SELECT * FROM course_completion_crit_compl WHERE userid = ? AND course = ?", user["id"], course["id"])}
    completions = []
    for c in crits:
        when = done.get(c["id"])
        if c["criteriatype"] == 1:
            title, details = "Self completion", {"type": "Self completion", "criteria": "Self completion",
                                                 "requirement": "Marking yourself complete", "status": ""}
        else:
            cm = st.get_course_module(c["moduleinstance"]) or {"modname": "page", "id": 0, "name": "?",
                                                               "completion": 1}
            link = f'<a href="{call.wwwroot}/mod/{cm["modname"]}/view.php?id={cm["id"]}">{cm["name"]}</a>'
            title, details = "Activity completion", {
                "type": "Activity completion", "criteria": link,
                "requirement": "Marking yourself complete" if cm["completion"] == 1 else "Viewing", "status": ""}
        completions.append({"type": c["criteriatype"], "title": title, "status": "Yes" if when else "No",
                            "complete": bool(when), "timecompleted": when or None, "details": details})
    cc = st.row("SELECT * FROM course_completions WHERE course = ? AND userid = ?", course["id"], user["id"])
    method = st.scalar("SELECT method FROM course_completion_aggr_methd WHERE course = ?", course["id"]) or 1
    return {"completionstatus": {"completed": bool(cc and cc["timecompleted"]), "aggregation": method,
                                 "completions": completions}, "warnings": []}


ACTIVITIES_DESC = Single({
    "statuses": Multiple(Single({
        "cmid": V("int"), "modname": V("plugin"), "instance": V("int"), "state": V("int"),
        "timecompleted": V("int"), "tracking": V("int"), "overrideby": OV("int"), "valueused": OV("bool"),
        "hascompletion": OV("bool"), "isautomatic": OV("bool"), "istrackeduser": OV("bool"),
        "uservisible": OV("bool"),
        "details": opt(Multiple(Single({"rulename": V("text"), "rulevalue": Single({"status": V("int"),
                                                                                     "description": V("text")})}))),
        "isoverallcomplete": OV("bool")})),
    "warnings": WARNINGS})


@register("core_completion_get_activities_completion_status", {"courseid": V("int"), "userid": V("int")},
          ACTIVITIES_DESC)
def get_activities_completion_status(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    course = _course(call, p["courseid"])
    user = _user(call, p["userid"])
    _can_view(call, course, user["id"])
    statuses = []
    tracked = st.is_tracked_user(course["id"], user["id"])
    for cm in st.rows("SELECT * FROM course_modules WHERE course = ? AND completion > 0 ORDER BY id", course["id"]):
        row = st.row("SELECT * FROM course_modules_completion WHERE coursemoduleid = ? AND userid = ?", cm["id"],
                     user["id"])
        state = row["completionstate"] if row else 0
        statuses.append({"cmid": cm["id"], "modname": cm["modname"], "instance": cm["instance"], "state": state,
                         "timecompleted": row["timemodified"] if row and state else 0, "tracking": cm["completion"],
                         "overrideby": row["overrideby"] if row else None, "valueused": False,
                         "hascompletion": True, "isautomatic": cm["completion"] == 2, "istrackeduser": tracked,
                         "uservisible": True, "details": [], "isoverallcomplete": state in (1, 2)})
    return {"statuses": statuses, "warnings": []}


@register("core_completion_update_activity_completion_status_manually", {"cmid": V("int"), "completed": V("bool")},
          Single({"status": V("bool"), "warnings": WARNINGS}))
def update_activity_completion_status_manually(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    cm = _cm(call, p["cmid"])
    course = _course(call, cm["course"])
    if not course["enablecompletion"]:
        raise errors.moodle_exception("completionnotenabled", "Completion is not enabled", module="completion")
    if cm["completion"] != 1:
        raise errors.moodle_exception("cannotmanualctrack", "Activity does not provide manual tracking")
    call.state.set_activity_completion(cm["id"], call.userid, 1 if p["completed"] else 0, actor=call.userid)
    return {"status": True, "warnings": []}


@register("core_completion_mark_course_self_completed", {"courseid": V("int")},
          Single({"status": V("bool"), "warnings": WARNINGS}))
def mark_course_self_completed(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    course = _course(call, p["courseid"])
    if not course["enablecompletion"]:
        raise errors.moodle_exception("completionnotenabled", "Completion is not enabled", module="completion")
    if not st.is_tracked_user(course["id"], call.userid):
        raise errors.moodle_exception("nottracked", "You are currently not being tracked by completion in this "
                                      "course", module="completion")
    crit = next((c for c in st.criteria(course["id"]) if c["criteriatype"] == 1), None)
    if crit is None:
        raise errors.moodle_exception("noselfcompletioncriteria", module="completion")
    if st.scalar("SELECT 1 FROM course_completion_crit_compl WHERE userid = ? AND criteriaid = ?", call.userid,
                 crit["id"]):
        raise errors.moodle_exception("useralreadymarkedcomplete", module="completion")
    with st.transaction():
        st.mark_criterion(crit, call.userid)
    return {"status": True, "warnings": []}


@register("core_completion_override_activity_completion_status", {
    "userid": V("int"), "cmid": V("int"), "newstate": V("int")},
    Single({"cmid": V("int"), "userid": V("int"), "state": V("int"), "timecompleted": V("int"),
            "overrideby": V("int"), "tracking": V("int")}))
def override_activity_completion_status(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    cm = _cm(call, p["cmid"])
    user = _user(call, p["userid"])
    call.require("moodle/course:overridecompletion")
    if p["newstate"] not in (0, 1):
        raise errors.InvalidParameter("newstate")
    course = _course(call, cm["course"])
    if not course["enablecompletion"] or not cm["completion"]:
        raise errors.moodle_exception("completionnotenabled", "Completion is not enabled", module="completion")
    row = call.state.set_activity_completion(cm["id"], user["id"], p["newstate"], actor=call.userid,
                                             overrideby=call.userid)
    return {"cmid": cm["id"], "userid": user["id"], "state": row["completionstate"],
            "timecompleted": row["timemodified"], "overrideby": row["overrideby"], "tracking": cm["completion"]}



CM_DESC = Single({
    "cm": Single({
        "id": V("int"), "course": V("int"), "module": V("int"), "name": V("raw"), "modname": V("component"),
        "instance": V("int"), "section": V("int"), "sectionnum": V("int"), "groupmode": V("int"),
        "groupingid": V("int"), "completion": V("int"), "idnumber": OV("raw"), "added": OV("int"),
        "score": OV("int"), "indent": OV("int"), "visible": OV("int"), "visibleoncoursepage": OV("int"),
        "visibleold": OV("int"), "completiongradeitemnumber": OV("int"), "completionview": OV("int"),
        "completionexpected": OV("int"), "showdescription": OV("int"), "downloadcontent": OV("int"),
        "availability": OV("raw")}),
    "warnings": WARNINGS})
# mdl_modules ids of a default 4.5 install, for the `module` key.
_MODULE_IDS = {"assign": 1, "forum": 9, "lesson": 13, "page": 15, "quiz": 16, "resource": 18, "scorm": 19, "url": 20}


@register("core_course_get_course_module", {"cmid": V("int")}, CM_DESC)
def get_course_module(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    """The course module with its idnumber (core_course_get_contents has none): what reconciliation needs to name
    an activity the way the plugin's webhooks do."""
    cm = _cm(call, p["cmid"])
    row = call.state.row("SELECT c.section AS sectionnum, c.id AS section, m.added, m.visible FROM course_modules m "
                         "LEFT JOIN course_sections c ON c.id = m.section WHERE m.id = ?", cm["id"]) or {}
    return {"cm": {"id": cm["id"], "course": cm["course"], "module": _MODULE_IDS.get(cm["modname"], 0),
                   "name": cm["name"], "modname": cm["modname"], "instance": cm["instance"],
                   "section": row.get("section") or 0, "sectionnum": row.get("sectionnum") or 0, "groupmode": 0,
                   "groupingid": 0, "completion": cm["completion"], "idnumber": cm["idnumber"] or "",
                   "added": row.get("added") or 0, "score": 0, "indent": 0, "visible": row.get("visible", 1),
                   "visibleoncoursepage": 1, "visibleold": row.get("visible", 1), "completiongradeitemnumber": None,
                   "completionview": 0, "completionexpected": 0, "showdescription": 0, "downloadcontent": 1,
                   "availability": None},
            "warnings": []}
