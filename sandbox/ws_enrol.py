"""enrol_manual_* and core_enrol_*: manual enrolment, enrolled users (paging, userfields), a user's courses."""

from __future__ import annotations

from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.functions import ENROL_MANUAL_VERSION, OV, Call, V, register
from creditbridge.sandbox.state import ROLES, Row
from creditbridge.sandbox.ws_courses import course_image
from creditbridge.sandbox.ws_users import user_details
from creditbridge.sandbox.wsformat import Multiple, Single, dflt, opt

ENROLLED_USER_DESC = Single({
    "id": V("int"), "username": OV("raw"), "firstname": OV("notags"), "lastname": OV("notags"),
    "fullname": V("notags"), "email": OV("text"), "address": OV("text"), "phone1": OV("notags"),
    "phone2": OV("notags"), "department": OV("text"), "institution": OV("text"), "idnumber": OV("raw"),
    "interests": OV("text"), "firstaccess": OV("int"), "lastaccess": OV("int"), "lastcourseaccess": OV("int"),
    "description": OV("raw"), "descriptionformat": OV("int"), "city": OV("notags"), "country": OV("alpha"),
    "profileimageurlsmall": OV("url"), "profileimageurl": OV("url"),
    "customfields": opt(Multiple(Single({"type": V("alpha"), "value": V("raw"), "name": V("raw"),
                                         "shortname": V("raw")}))),
    "groups": opt(Multiple(Single({"id": V("int"), "name": V("raw"), "description": V("raw"),
                                   "descriptionformat": V("int")}))),
    "roles": opt(Multiple(Single({"roleid": V("int"), "name": V("raw"), "shortname": V("alpha"),
                                  "sortorder": V("int")}))),
    "preferences": opt(Multiple(Single({"name": V("raw"), "value": V("raw")}))),
    "enrolledcourses": opt(Multiple(Single({"id": V("int"), "fullname": V("raw"), "shortname": V("raw")}))),
})
USER_COURSE_DESC = Single({
    "id": V("int"), "shortname": V("raw"), "fullname": V("raw"), "displayname": OV("raw"),
    "enrolledusercount": OV("int"), "idnumber": V("raw"), "visible": V("int"), "summary": OV("raw"),
    "summaryformat": OV("int"), "format": OV("plugin"), "courseimage": OV("url"), "showgrades": OV("bool"),
    "lang": OV("lang"), "enablecompletion": OV("bool"), "completionhascriteria": OV("bool"),
    "completionusertracked": OV("bool"), "category": OV("int"), "progress": OV("float"), "completed": OV("bool"),
    "startdate": OV("int"), "enddate": OV("int"), "marker": OV("int"), "lastaccess": OV("int"),
    "isfavourite": OV("bool"), "hidden": OV("bool"),
    "overviewfiles": opt(Multiple(Single({"filename": OV("file")}))), "showactivitydates": OV("bool"),
    "showcompletionconditions": OV("bool"), "timemodified": OV("int"),
})


@register("core_enrol_get_course_enrolment_methods", {"courseid": V("int")}, None)
def get_course_enrolment_methods(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    """Only plugins with self-service information (guest, self) are listed, never the manual instance."""
    st = call.state
    if st.get_course(p["courseid"]) is None:
        raise errors.missing_record("course", p["courseid"])
    out = []
    for inst in st.rows("SELECT * FROM enrol WHERE courseid = ? AND status = 0 AND enrol IN ('self', 'guest') "
                        "ORDER BY id", p["courseid"]):
        name = {"self": "Self enrolment (Student)", "guest": "Guest access"}[inst["enrol"]]
        out.append({"id": inst["id"], "courseid": inst["courseid"], "type": inst["enrol"], "name": name,
                    "status": "1", "wsfunction": f"enrol_{inst['enrol']}_get_instance_info"})
    return out


def _course_or_fail(call: Call, courseid: int) -> Row:
    course = call.state.row("SELECT * FROM course WHERE id = ?", courseid)
    if course is None:
        raise errors.missing_record("course", courseid)
    return course


@register("enrol_manual_enrol_users", {"enrolments": Multiple(Single({
    "roleid": V("int"), "userid": V("int"), "courseid": V("int"), "timestart": OV("int"), "timeend": OV("int"),
    "suspend": OV("int")}))}, None, version=ENROL_MANUAL_VERSION, returns_nothing=True)
def enrol_users(call: Call, p: dict[str, Any]) -> None:
    st = call.state
    with st.transaction():
        for e in p["enrolments"]:
            _course_or_fail(call, e["courseid"])
            call.require("enrol/manual:enrol")
            if e["roleid"] not in ROLES:
                raise errors.moodle_exception("wsusercannotassign", "You don't have the permission to assign this "
                                              f"role ({e['roleid']}) to this user ({e['userid']}) in this course"
                                              f"({e['courseid']}).", module="enrol_manual")
            if st.manual_instance(e["courseid"]) is None:
                raise errors.moodle_exception("wsnoinstance", "Manual enrolment plugin instance doesn't exist or is "
                                              f"disabled for the course (id = {e['courseid']})", module="enrol_manual")
            if st.row("SELECT id FROM user WHERE id = ? AND deleted = 0", e["userid"]) is None:
                raise errors.invalid_user()
            st.enrol_user(e["courseid"], e["userid"], e["roleid"], e.get("timestart") or 0, e.get("timeend") or 0,
                          1 if e.get("suspend") else 0)


@register("enrol_manual_unenrol_users", {"enrolments": Multiple(Single({
    "userid": V("int"), "courseid": V("int"), "roleid": OV("int")}))}, None, version=ENROL_MANUAL_VERSION,
    returns_nothing=True)
def unenrol_users(call: Call, p: dict[str, Any]) -> None:
    st = call.state
    with st.transaction():
        for e in p["enrolments"]:
            _course_or_fail(call, e["courseid"])
            call.require("enrol/manual:unenrol")
            inst = st.manual_instance(e["courseid"])
            if inst is None:
                raise errors.moodle_exception("wsnoinstance", "Manual enrolment plugin instance doesn't exist or is "
                                              f"disabled for the course (id = {e['courseid']})", module="enrol_manual")
            if st.row("SELECT id FROM user WHERE id = ?", e["userid"]) is None:
                raise errors.invalid_user()
            st.execute("DELETE FROM user_enrolments WHERE enrolid = ? AND userid = ?", inst["id"], e["userid"])
            if not st.is_enrolled(e["courseid"], e["userid"]):
                st.execute("DELETE FROM role_assignments WHERE contextid = ? AND userid = ?",
                           st.course_context(e["courseid"]), e["userid"])


def _enrolled_courses(call: Call, userid: int) -> list[Row]:
    """enrol_get_users_courses($userid, onlyactive = true), Moodle's course order."""
    st = call.state
    courses: dict[int, Row] = {}
    for row in st.rows("SELECT c.*, ue.status AS uestatus, ue.timestart, ue.timeend, e.status AS estatus "
                       "FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid JOIN course c ON c.id = e.courseid "
                       "WHERE ue.userid = ? ORDER BY c.visible DESC, c.id", userid):
        if row["id"] not in courses and st.enrolment_active({**row, "status": row["uestatus"]}):
            courses[row["id"]] = row
    return list(courses.values())


@register("core_enrol_get_enrolled_users", {"courseid": V("int"), "options": dflt(
    Multiple(Single({"name": V("alphanumext"), "value": V("raw")})), [])}, Multiple(ENROLLED_USER_DESC))
def get_enrolled_users(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    course = _course_or_fail(call, p["courseid"])
    call.require("moodle/course:enrolreview")
    opts = {o["name"]: o["value"] for o in p["options"]}
    limitfrom, limitnumber = int(opts.get("limitfrom") or 0), int(opts.get("limitnumber") or 0)
    onlyactive = opts.get("onlyactive") in {"1", "true"}
    onlysuspended = opts.get("onlysuspended") in {"1", "true"}
    userfields = [f.strip() for f in opts["userfields"].split(",")] if opts.get("userfields") else None
    sortby = opts.get("sortby", "id") if opts.get("sortby") in {"id", "firstname", "lastname", "siteorder"} else "id"
    direction = "DESC" if (opts.get("sortdirection") or "").upper() == "DESC" else "ASC"
    order = "u.id" if sortby in {"id", "siteorder"} else f"u.{sortby}"
    users = []
    for u in st.rows("SELECT DISTINCT u.* FROM user u JOIN user_enrolments ue ON ue.userid = u.id JOIN enrol e ON "  # noqa: S608 - identifiers come from a fixed list
                     f"e.id = ue.enrolid WHERE e.courseid = ? AND u.deleted = 0 ORDER BY {order} {direction}",
                     course["id"]):
        active = st.is_enrolled(course["id"], u["id"], active=True)
        if (onlyactive and not active) or (onlysuspended and active):
            continue
        users.append(u)
    users = users[limitfrom:limitfrom + limitnumber] if limitnumber else users[limitfrom:]
    out = []
    for u in users:
        d = user_details(call, u, courseid=course["id"])
        d["roles"] = [{"roleid": r, "name": "", "shortname": ROLES[r], "sortorder": 0}
                      for r in st.roles_in_course(course["id"], u["id"])]
        mine = _enrolled_courses(call, u["id"])
        if mine:
            d["enrolledcourses"] = [{"id": c["id"], "fullname": c["fullname"], "shortname": c["shortname"]}
                                    for c in mine]
        if userfields is not None:
            d = {k: v for k, v in d.items() if k in userfields or k in {"id", "fullname"}}
        out.append(d)
    return out


@register("core_enrol_get_users_courses", {"userid": V("int"), "returnusercount": dflt(V("bool"), True)},
          Multiple(USER_COURSE_DESC))
def get_users_courses(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    if st.row("SELECT id FROM user WHERE id = ? AND deleted = 0", p["userid"]) is None:
        raise errors.invalid_user()
    if p["userid"] != call.userid:
        call.require("moodle/user:viewdetails")
    out = []
    for c in _enrolled_courses(call, p["userid"]):
        count = st.scalar("SELECT COUNT(DISTINCT ue.userid) FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid "
                          "WHERE e.courseid = ?", c["id"])
        has_criteria = bool(st.criteria(c["id"]))
        cc = st.row("SELECT * FROM course_completions WHERE course = ? AND userid = ?", c["id"], p["userid"])
        item: dict[str, Any] = {"id": c["id"], "shortname": c["shortname"], "fullname": c["fullname"],
                                "displayname": c["fullname"]}
        if p["returnusercount"]:
            item["enrolledusercount"] = count
        item.update({
            "idnumber": c["idnumber"] or "", "visible": c["visible"], "summary": c["summary"],
            "summaryformat": c["summaryformat"], "format": c["format"], "courseimage": course_image(call, c["id"]),
            "showgrades": bool(c["showgrades"]), "lang": c["lang"] or "",
            "enablecompletion": bool(c["enablecompletion"]),
            "completionhascriteria": has_criteria,
            "completionusertracked": st.is_tracked_user(c["id"], p["userid"]), "category": c["category"],
            "progress": _progress(call, c["id"], p["userid"]), "completed": bool(cc and cc["timecompleted"]),
            "startdate": c["startdate"], "enddate": c["enddate"], "marker": 0, "lastaccess": None,
            "isfavourite": False, "hidden": False, "overviewfiles": [], "showactivitydates": True,
            "showcompletionconditions": True, "timemodified": c["timemodified"]})
        out.append(item)
    return out


def _progress(call: Call, courseid: int, userid: int) -> float | None:
    """\\core_completion\\progress::get_course_progress_percentage(): null without tracked activities."""
    st = call.state
    course = st.get_course(courseid)
    cms = st.rows("SELECT id FROM course_modules WHERE course = ? AND completion > 0", courseid)
    if not course or not course["enablecompletion"] or not cms or not st.is_tracked_user(courseid, userid):
        return None
    done = sum(1 for cm in cms if (st.scalar("SELECT completionstate FROM course_modules_completion WHERE "
                                             "coursemoduleid = ? AND userid = ?", cm["id"], userid) or 0) in (1, 2))
    return done * 100.0 / len(cms)
