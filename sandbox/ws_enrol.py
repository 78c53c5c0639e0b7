"""enrol_manual_* and core_enrol_*: manual enrolment, enrolled users (paging, userfields), a user's courses."""

from __future__ import annotations

import json
from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.functions import ENROL_MANUAL_VERSION, OV, Call, V, register
from creditbridge.sandbox.state import CONTEXT_COURSE, ROLES, STUDENT_ROLE, Row
from creditbridge.sandbox.ws_courses import course_sortorder
from creditbridge.sandbox.ws_users import fullname, user_details
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
    assignable = set(ROLES) if call.is_admin else st.assignable_roles(call.userid)
    unsent = 0
    with st.transaction():
        for e in p["enrolments"]:
            _course_or_fail(call, e["courseid"])
            call.require("enrol/manual:enrol")
            if e["roleid"] not in assignable:  # get_assignable_roles($context)
                raise errors.moodle_exception("wsusercannotassign", "You don't have the permission to assign this "
                                              f"role ({e['roleid']}) to this user ({e['userid']}) in this course "
                                              f"({e['courseid']}).", module="enrol_manual")
            if st.manual_instance(e["courseid"]) is None:
                raise errors.moodle_exception("wsnoinstance", "Manual enrolment plugin instance doesn't exist or is "
                                              f"disabled for the course (id = {e['courseid']})", module="enrol_manual")
            if st.row("SELECT id FROM user WHERE id = ? AND deleted = 0", e["userid"]) is None:
                raise errors.invalid_user()
            inst = st.manual_instance(e["courseid"])
            inserted = st.enrol_user(e["courseid"], e["userid"], e["roleid"], e.get("timestart") or 0,
                                     e.get("timeend") or 0, 1 if e.get("suspend") else 0)
            if inserted and inst and inst["customint1"] and st.flag("sandbox_mail_fails"):
                unsent += 1
    # Moodle buffers messages sent inside a transaction and sends them after the commit: when mail fails the
    # enrolments are saved and only then does the call answer the error (README of the recordings, item 8).
    if unsent:
        raise errors.moodle_exception("Message was not sent.")


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
    """enrol_get_users_courses($userid, onlyactive = true), Moodle's course order: visible first, then
    course.sortorder (category order, then the position inside the category; roles.json #23)."""
    st = call.state
    courses: dict[int, Row] = {}
    for row in st.rows("SELECT c.*, ue.status AS uestatus, ue.timestart, ue.timeend, e.status AS estatus "
                       "FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid JOIN course c ON c.id = e.courseid "
                       "WHERE ue.userid = ? ORDER BY c.visible DESC, c.id", userid):
        if row["id"] not in courses and st.enrolment_active({**row, "status": row["uestatus"]}):
            courses[row["id"]] = row
    return sorted(courses.values(), key=lambda c: (-c["visible"], course_sortorder(call, c), c["id"]))


# What user_get_user_details() builds besides these (customfields and pictures need queries of their own).
_ALWAYS = {"id", "fullname"}
_PER_ENROLMENT = {"roles", "enrolledcourses"}


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
    userfields = {f.strip() for f in opts["userfields"].split(",")} if opts.get("userfields") else None
    sortby = opts.get("sortby", "id") if opts.get("sortby") in {"id", "firstname", "lastname", "siteorder"} else "id"
    direction = "DESC" if (opts.get("sortdirection") or "").upper() == "DESC" else "ASC"
    order = "u.id" if sortby in {"id", "siteorder"} else f"u.{sortby}"
    # One query for every enrolment of the course (a user may hold several, e.g. manual and self): a user is
    # active when any of them is, as is_enrolled(active=True) says.
    users: dict[int, Row] = {}
    active: dict[int, bool] = {}
    for r in st.rows("SELECT u.*, ue.status AS ue_status, ue.timestart AS ue_timestart, ue.timeend AS ue_timeend, "  # noqa: S608 - identifiers come from a fixed list
                     "e.status AS e_status FROM user u JOIN user_enrolments ue ON ue.userid = u.id "
                     f"JOIN enrol e ON e.id = ue.enrolid WHERE e.courseid = ? AND u.deleted = 0 "
                     f"ORDER BY {order} {direction}, u.id {direction}", course["id"]):
        ue = {"status": r.pop("ue_status"), "timestart": r.pop("ue_timestart"), "timeend": r.pop("ue_timeend"),
              "estatus": r.pop("e_status")}
        users.setdefault(r["id"], r)
        active[r["id"]] = active.get(r["id"], False) or st.enrolment_active(ue)
    listed = [u for uid, u in users.items()
              if not ((onlyactive and not active[uid]) or (onlysuspended and active[uid]))]
    listed = listed[limitfrom:limitfrom + limitnumber] if limitnumber else listed[limitfrom:]

    # Build only what is asked for (Moodle's userfields): reconciliation asks for ids alone, and a user's
    # full record with the list of every course they are in is the costly part.
    def wanted(key: str) -> bool:
        return userfields is None or key in userfields or key in _ALWAYS
    details = userfields is None or bool(userfields - _ALWAYS - _PER_ENROLMENT)
    roles: dict[int, list[int]] = {}
    if wanted("roles") and listed:
        for r in st.rows("SELECT userid, roleid FROM role_assignments WHERE contextid = ? ORDER BY id",
                         st.course_context(course["id"])):
            roles.setdefault(r["userid"], []).append(r["roleid"])
    out = []
    for u in listed:
        d = user_details(call, u, courseid=course["id"]) if details else {"id": u["id"], "fullname": fullname(u)}
        d["roles"] = [{"roleid": r, "name": "", "shortname": ROLES[r], "sortorder": 0} for r in roles.get(u["id"], [])]
        mine = _enrolled_courses(call, u["id"]) if wanted("enrolledcourses") else []
        if mine:
            d["enrolledcourses"] = [{"id": c["id"], "fullname": c["fullname"], "shortname": c["shortname"]}
                                    for c in mine]
        if userfields is not None:
            d = {k: v for k, v in d.items() if wanted(k)}
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
    courses = _enrolled_courses(call, p["userid"])
    facts = _course_facts(call, [c["id"] for c in courses], p["userid"])
    out = []
    for c in courses:
        f = facts[c["id"]]
        item: dict[str, Any] = {"id": c["id"], "shortname": c["shortname"], "fullname": c["fullname"],
                                "displayname": c["fullname"]}
        if p["returnusercount"]:
            item["enrolledusercount"] = f["count"]
        item.update({
            "idnumber": c["idnumber"] or "", "visible": c["visible"], "summary": c["summary"],
            "summaryformat": c["summaryformat"], "format": c["format"],
            # the URL ws_courses.course_image() makes, from the context already read
            "courseimage": f"{call.wwwroot}/pluginfile.php/{f['context']}/course/generated/course.svg",
            "showgrades": bool(c["showgrades"]), "lang": c["lang"] or "",
            "enablecompletion": bool(c["enablecompletion"]),
            "completionhascriteria": f["has_criteria"],
            "completionusertracked": f["tracked"], "category": c["category"],
            "progress": f["progress"] if c["enablecompletion"] else None, "completed": f["completed"],
            "startdate": c["startdate"], "enddate": c["enddate"], "marker": 0, "lastaccess": None,
            "isfavourite": False, "hidden": False, "overviewfiles": [], "showactivitydates": True,
            "showcompletionconditions": True, "timemodified": c["timemodified"]})
        out.append(item)
    return out


def _course_facts(call: Call, courseids: list[int], userid: int) -> dict[int, dict[str, Any]]:
    """What get_users_courses says of each of a user's courses (all actively enrolled: that is how they were
    listed), read for all of them at once instead of a dozen queries a course: a teacher is in dozens."""
    st = call.state
    ids = json.dumps(courseids)
    within = "IN (SELECT value FROM json_each(?))"
    counts = {r["courseid"]: r["n"] for r in st.rows(
        f"SELECT e.courseid, COUNT(DISTINCT ue.userid) AS n FROM user_enrolments ue JOIN enrol e ON e.id = ue.enrolid "  # noqa: S608 - a fixed fragment
        f"WHERE e.courseid {within} GROUP BY e.courseid", ids)}
    with_criteria = {r["course"] for r in st.rows(
        f"SELECT DISTINCT course FROM course_completion_criteria WHERE course {within}", ids)}  # noqa: S608 - a fixed fragment
    completed = {r["course"] for r in st.rows(
        f"SELECT course FROM course_completions WHERE userid = ? AND timecompleted AND course {within}",  # noqa: S608 - a fixed fragment
        userid, ids)}
    contexts = {r["instanceid"]: r["id"] for r in st.rows(
        f"SELECT instanceid, id FROM context WHERE contextlevel = ? AND instanceid {within}", CONTEXT_COURSE, ids)}  # noqa: S608 - a fixed fragment
    contexts = {cid: contexts.get(cid) or st.course_context(cid) for cid in courseids}
    # completion_info::is_tracked_user(): actively enrolled (every course here is) with the student role.
    students = {r["contextid"] for r in st.rows(
        "SELECT contextid FROM role_assignments WHERE userid = ? AND roleid = ? "
        "AND contextid IN (SELECT value FROM json_each(?))", userid, STUDENT_ROLE, json.dumps(list(contexts.values())))}
    tracked_cms: dict[int, list[int]] = {}
    for r in st.rows(f"SELECT course, id FROM course_modules WHERE completion > 0 AND course {within}", ids):  # noqa: S608 - a fixed fragment
        tracked_cms.setdefault(r["course"], []).append(r["id"])
    done = {r["coursemoduleid"] for r in st.rows(
        "SELECT coursemoduleid FROM course_modules_completion WHERE userid = ? AND completionstate IN (1, 2) "
        "AND coursemoduleid IN (SELECT value FROM json_each(?))", userid,
        json.dumps([cm for cms in tracked_cms.values() for cm in cms]))}
    facts: dict[int, dict[str, Any]] = {}
    for cid in courseids:
        tracked = contexts[cid] in students
        cms = tracked_cms.get(cid, [])
        # \core_completion\progress::get_course_progress_percentage(): null without tracked activities.
        progress = sum(1 for cm in cms if cm in done) * 100.0 / len(cms) if cms and tracked else None
        facts[cid] = {"count": counts.get(cid, 0), "has_criteria": cid in with_criteria, "completed": cid in completed,
                      "context": contexts[cid], "tracked": tracked, "progress": progress}
    return facts
