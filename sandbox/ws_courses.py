"""core_course_*: categories, courses with custom fields, course contents."""

from __future__ import annotations

import json
import re
from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.errors import InvalidParameter, WsException
from creditbridge.sandbox.functions import DV, OV, WARNINGS, Call, V, register
from creditbridge.sandbox.state import CONTEXT_COURSE, CONTEXT_COURSECAT, CONTEXT_MODULE, SITE_COURSE_ID, Row
from creditbridge.sandbox.wsformat import Multiple, Single, dflt, opt

CATEGORY_STEP = 10000  # MAX_COURSES_IN_CATEGORY

CATEGORY_DESC = Single({
    "id": V("int"), "name": V("text"), "idnumber": OV("raw"), "description": V("raw"),
    "descriptionformat": V("int"), "parent": V("int"), "sortorder": V("int"), "coursecount": V("int"),
    "visible": OV("int"), "visibleold": OV("int"), "timemodified": OV("int"), "depth": V("int"),
    "path": V("text"), "theme": OV("theme")})


def _category_out(call: Call, c: Row) -> dict[str, Any]:
    count = call.state.scalar("SELECT COUNT(*) FROM course WHERE category = ?", c["id"])
    return {"id": c["id"], "name": c["name"], "idnumber": c["idnumber"] or "", "description": c["description"] or "",
            "descriptionformat": c["descriptionformat"], "parent": c["parent"], "sortorder": c["sortorder"],
            "coursecount": count, "visible": c["visible"], "visibleold": c["visibleold"],
            "timemodified": c["timemodified"], "depth": c["depth"], "path": c["path"], "theme": c["theme"] or ""}


@register("core_course_create_categories", {"categories": Multiple(Single({
    "name": V("text"), "parent": DV("int", 0), "idnumber": OV("raw"), "description": OV("raw"),
    "descriptionformat": DV("int", 1), "theme": OV("theme")}))},
    Multiple(Single({"id": V("int"), "name": V("text")})))
def create_categories(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    with st.transaction():
        for cat in p["categories"]:
            parent = None
            if cat["parent"]:
                parent = st.row("SELECT * FROM course_categories WHERE id = ?", cat["parent"])
                if parent is None:
                    raise errors.moodle_exception("unknowcategory", "Category not known!")
            call.require("moodle/category:manage")
            if cat["name"].strip() == "":
                raise errors.moodle_exception("categorynamerequired", "A category name is required.")
            if cat.get("idnumber"):
                if len(cat["idnumber"]) > 100:
                    raise errors.moodle_exception("idnumbertoolong", "The ID number is too long")
                if st.scalar("SELECT 1 FROM course_categories WHERE idnumber = ?", cat["idnumber"]):
                    raise errors.moodle_exception("categoryidnumbertaken",
                                                  "ID number is already used for another category")
            cid = st.next_id("course_categories")
            sortorder = int(st.scalar("SELECT COALESCE(MAX(sortorder), 0) FROM course_categories")) + CATEGORY_STEP
            path = (parent["path"] if parent else "") + f"/{cid}"
            st.insert("course_categories", {
                "id": cid, "name": cat["name"], "idnumber": cat.get("idnumber"), "description": cat.get("description")
                or "", "descriptionformat": cat["descriptionformat"], "parent": cat["parent"], "sortorder": sortorder,
                "timemodified": call.now(), "depth": (parent["depth"] + 1) if parent else 1, "path": path,
                "theme": cat.get("theme") or ""})
            parent_ctx = st.context_for(CONTEXT_COURSECAT, parent["id"]) if parent else 1
            st.context_for(CONTEXT_COURSECAT, cid, parent_ctx)
            out.append({"id": cid, "name": cat["name"]})
    return out


@register("core_course_get_categories", {
    "criteria": dflt(Multiple(Single({"key": V("alpha"), "value": V("raw")})), []),
    "addsubcategories": DV("bool", True)}, Multiple(CATEGORY_DESC))
def get_categories(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    cats = st.rows("SELECT * FROM course_categories ORDER BY sortorder, id")
    for crit in p.get("criteria") or []:
        key, value = crit["key"], crit["value"]
        if key == "ids":
            wanted = {int(x) for x in value.split(",") if x.strip().isdigit()}
            cats = [c for c in cats if c["id"] in wanted]
        elif key in {"id", "parent", "visible"}:
            cats = [c for c in cats if str(c[key]) == value]
        elif key in {"name", "idnumber", "theme"}:
            cats = [c for c in cats if (c[key] or "") == value]
        else:
            raise InvalidParameter(f"The search key '{key}' is not supported")
    if p["addsubcategories"] and p.get("criteria"):
        ids = {c["id"] for c in cats}
        extra = [c for c in st.rows("SELECT * FROM course_categories ORDER BY sortorder, id")
                 if c["id"] not in ids and any(f"/{i}/" in c["path"] + "/" for i in ids)]
        cats = sorted(cats + extra, key=lambda c: (c["sortorder"], c["id"]))
    return [_category_out(call, c) for c in cats]


# ------------------------------------------------------------------ course custom fields

def course_fields(call: Call) -> list[Row]:
    return call.state.rows("SELECT * FROM customfield_field ORDER BY sortorder, id")


def _invalid_persistent() -> WsException:
    return WsException("core\\invalid_persistent_exception", "invalidpersistenterror",
                       "Error: Data submitted is invalid")


def _checked_value(field: Row, value: str) -> str:
    """The data controller's validation: what the persistent accepts, else invalid_persistent_exception."""
    config = json.loads(field["configdata"] or "{}")
    if field["type"] == "number":
        if value.strip() == "":
            return ""
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value.strip()):
            raise _invalid_persistent()
        number = float(value)
        low, high = config.get("minimumvalue"), config.get("maximumvalue")
        if (low not in (None, "") and number < float(low)) or (high not in (None, "") and number > float(high)):
            raise _invalid_persistent()
        return str(number)
    if field["type"] == "select":
        options = config.get("options", "").split("\n")
        if not re.fullmatch(r"\d+", value) or int(value) > len(options):
            raise _invalid_persistent()
        return str(int(value))
    if field["type"] == "checkbox":
        if value not in {"0", "1", ""}:
            raise _invalid_persistent()
        return value or "0"
    return value


def save_course_fields(call: Call, courseid: int, fields: list[dict[str, str]]) -> None:
    known = {f["shortname"]: f for f in course_fields(call)}
    for item in fields:
        f = known.get(item["shortname"])
        if f is None:  # unknown shortnames are silently ignored, as on the recorded site
            continue
        value = _checked_value(f, item["value"])
        call.state.execute("INSERT OR REPLACE INTO customfield_data (fieldid, instanceid, value) VALUES (?, ?, ?)",
                           f["id"], courseid, value)


def course_customfields(call: Call, courseid: int) -> list[dict[str, Any]]:
    data = {r["fieldid"]: r["value"] for r in call.state.rows(
        "SELECT * FROM customfield_data WHERE instanceid = ?", courseid)}
    out = []
    for f in course_fields(call):
        config = json.loads(f["configdata"] or "{}")
        raw = data.get(f["id"])
        valueraw: Any
        value: Any
        if f["type"] == "number":
            valueraw = float(raw) if raw not in (None, "") else None
            value = None if valueraw is None else f"{valueraw:.{int(config.get('decimalplaces', 0))}f}"
        elif f["type"] == "select":
            valueraw = int(raw) if raw else 0
            options = config.get("options", "").split("\n")
            value = options[valueraw - 1] if 0 < valueraw <= len(options) else None
        elif f["type"] == "checkbox":
            valueraw = int(raw) if raw else 0
            value = "Yes" if valueraw else "No"
        else:
            # A text field without a data record reads null (roles.json: courses made before the field
            # existed); one saved by a course form or web service holds "" (courses.json).
            valueraw = raw
            value = raw or None
        out.append({"name": f["name"], "shortname": f["shortname"], "type": f["type"], "valueraw": valueraw,
                    "value": value})
    return out


# ------------------------------------------------------------------ courses

COURSE_IN: dict[str, Any] = {
    "fullname": V("text"), "shortname": V("text"), "categoryid": V("int"), "idnumber": OV("raw"),
    "summary": OV("raw"), "summaryformat": DV("int", 1), "format": DV("plugin", "topics"), "showgrades": OV("int"),
    "newsitems": OV("int"), "startdate": OV("int"), "enddate": OV("int"), "numsections": OV("int"),
    "maxbytes": OV("int"), "showreports": OV("int"), "visible": OV("int"), "hiddensections": OV("int"),
    "groupmode": OV("int"), "groupmodeforce": OV("int"), "defaultgroupingid": OV("int"),
    "enablecompletion": OV("int"), "completionnotify": OV("int"), "lang": OV("safedir"), "forcetheme": OV("plugin"),
    "courseformatoptions": opt(Multiple(Single({"name": V("alpha"), "value": V("raw")}))),
    "customfields": opt(Multiple(Single({"shortname": V("alphanumext"), "value": V("raw")}))),
}
COURSE_COLUMNS = ("fullname", "shortname", "idnumber", "summary", "summaryformat", "format", "showgrades", "newsitems",
                  "startdate", "enddate", "maxbytes", "showreports", "visible", "groupmode", "groupmodeforce",
                  "defaultgroupingid", "enablecompletion", "completionnotify", "lang")


def _check_dates(course: dict[str, Any]) -> None:
    if course.get("enddate") and course.get("startdate") is not None and course["enddate"] < course["startdate"]:
        raise errors.moodle_exception("enddatebeforestartdate", "The course end date must be after the start date.")


@register("core_course_create_courses", {"courses": Multiple(Single(COURSE_IN))},
          Multiple(Single({"id": V("int"), "shortname": V("raw")})))
def create_courses(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    with st.transaction():
        for course in p["courses"]:
            if st.row("SELECT id FROM course_categories WHERE id = ?", course["categoryid"]) is None:
                raise errors.moodle_exception(
                    "errorcatcontextnotvalid", "You cannot execute functions in the category context (category id:"
                    f"{course['categoryid']}). The context error message was: Invalid parameter value detected")
            call.require("moodle/course:create")
            for name in ("fullname", "shortname"):
                if course[name].strip() == "":
                    raise errors.moodle_exception("errorinvalidparam", f"Invalid parameter \"{name}\"",
                                                  module="webservice")
            if course["shortname"] and st.scalar("SELECT 1 FROM course WHERE shortname = ?", course["shortname"]):
                raise errors.moodle_exception("shortnametaken", "Short name is already used for another course "
                                              f"({course['shortname']})")
            if course.get("idnumber") and st.scalar("SELECT 1 FROM course WHERE idnumber = ?", course["idnumber"]):
                raise errors.moodle_exception("courseidnumbertaken", "ID number is already used for another course "
                                              f"({course['idnumber']})")
            _check_dates(course)
            now = call.now()
            row = {k: course[k] for k in COURSE_COLUMNS if course.get(k) is not None}
            row.update({"category": course["categoryid"], "timecreated": now, "timemodified": now, "cacherev": now,
                        "formatoptions": json.dumps({o["name"]: o["value"] for o in course.get("courseformatoptions")
                                                     or []})})
            cid = st.insert("course", row)
            st.context_for(CONTEXT_COURSE, cid, st.context_for(CONTEXT_COURSECAT, course["categoryid"]))
            st.insert("course_sections", {"course": cid, "section": 0, "name": None})
            for plugin, status, role in (("manual", 0, 5), ("guest", 1, 0), ("self", 1, 5)):
                # A new manual instance takes enrol_manual's sendcoursewelcomemessage as its customint1.
                st.insert("enrol", {"enrol": plugin, "status": status, "courseid": cid, "roleid": role,
                                    "customint1": st.welcome_default() if plugin == "manual" else 0})
            if row.get("newsitems", 5):  # the Announcements forum every new course gets
                st.add_course_module(cid, "forum", "Announcements", completion=0)
            save_course_fields(call, cid, course.get("customfields") or [])
            for f in course_fields(call):  # the course form saves every text field, given or not
                if f["type"] == "text":
                    st.execute("INSERT OR IGNORE INTO customfield_data (fieldid, instanceid, value) VALUES (?, ?, '')",
                               f["id"], cid)
            out.append({"id": cid, "shortname": course["shortname"]})
    return out


@register("core_course_update_courses", {"courses": Multiple(Single({
    "id": V("int"), **{k: OV(v.type) for k, v in COURSE_IN.items() if k not in {"courseformatoptions",
                                                                                   "customfields"}},
    "courseformatoptions": opt(Multiple(Single({"name": V("alpha"), "value": V("raw")}))),
    "customfields": opt(Multiple(Single({"shortname": V("alphanumext"), "value": V("raw")})))}))},
    Single({"warnings": WARNINGS}))
def update_courses(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    warnings = []
    with st.transaction():
        for course in p["courses"]:
            try:
                with st.savepoint():
                    existing = st.row("SELECT * FROM course WHERE id = ?", course["id"])
                    if existing is None:
                        raise WsException("dml_missing_record_exception", "invalidrecord",
                                          "Can't find data record in database table course.")
                    call.require("moodle/course:update")
                    _require_change_capabilities(call, existing, course)
                    if course.get("shortname") and st.scalar("SELECT 1 FROM course WHERE shortname = ? AND id != ?",
                                                             course["shortname"], course["id"]):
                        raise errors.moodle_exception("shortnametaken", "Short name is already used for another "
                                                      f"course ({course['shortname']})")
                    if course.get("idnumber") and st.scalar("SELECT 1 FROM course WHERE idnumber = ? AND id != ?",
                                                            course["idnumber"], course["id"]):
                        raise errors.moodle_exception("courseidnumbertaken", "ID number is already used for another "
                                                      f"course ({course['idnumber']})")
                    if course.get("categoryid") is not None and st.row(
                            "SELECT id FROM course_categories WHERE id = ?", course["categoryid"]) is None:
                        raise errors.moodle_exception("unknowcategory", "Category not known!")
                    changes = {k: course[k] for k in COURSE_COLUMNS if course.get(k) is not None}
                    if course.get("categoryid") is not None:
                        changes["category"] = course["categoryid"]
                        if course["categoryid"] != existing["category"]:
                            changes["sortorder"] = None
                    merged = {**existing, **changes}
                    _check_dates(merged)
                    changes["timemodified"] = call.now()
                    st.update("course", course["id"], changes)
                    save_course_fields(call, course["id"], course.get("customfields") or [])
            except WsException as e:
                warnings.append({"item": "course", "itemid": course["id"], "warningcode": e.errorcode,
                                 "message": e.message})
    return {"warnings": warnings}


# core_course_external::update_courses() checks these in this order, each only when the value changes, and
# stops at the first one missing: a course with a new category and a new fullname names only the category
# (roles.json #4). (given key, stored column, capability)
_CHANGE_CHECKS = (("categoryid", "category", "moodle/course:changecategory"),
                  ("fullname", "fullname", "moodle/course:changefullname"),
                  ("shortname", "shortname", "moodle/course:changeshortname"),
                  ("idnumber", "idnumber", "moodle/course:changeidnumber"),
                  ("summary", "summary", "moodle/course:changesummary"),
                  ("summaryformat", "summaryformat", "moodle/course:changesummary"),
                  ("visible", "visible", "moodle/course:visibility"))


def _require_change_capabilities(call: Call, existing: Row, course: dict[str, Any]) -> None:
    for key, column, capability in _CHANGE_CHECKS:
        stored = existing[column]
        if course.get(key) is not None and str(course[key]) != ("" if stored is None else str(stored)):
            call.require(capability)


def course_sortorder(call: Call, course: Row) -> int:
    """Moodle puts a new course first in its category and renumbers: newest = category sortorder + 1. A site
    prepared server-side may fix a course's sortorder; moving the course to another category drops it."""
    if course.get("sortorder") is not None:
        return int(course["sortorder"])
    cat = call.state.row("SELECT sortorder FROM course_categories WHERE id = ?", course["category"])
    newer = call.state.scalar("SELECT COUNT(*) FROM course WHERE category = ? AND id >= ?", course["category"],
                              course["id"])
    return (cat["sortorder"] if cat else 0) + int(newer)


def enrolment_methods(call: Call, courseid: int) -> list[str]:
    return [r["enrol"] for r in call.state.rows("SELECT enrol FROM enrol WHERE courseid = ? AND status = 0 ORDER BY id",
                                                courseid)]


def course_image(call: Call, courseid: int) -> str:
    ctx = call.state.course_context(courseid)
    return f"{call.wwwroot}/pluginfile.php/{ctx}/course/generated/course.svg"


FILTERS = ("displayh5p", "activitynames", "mathjaxloader", "emoticon", "urltolink", "mediaplugin")

COURSE_DESC = Single({
    "id": V("int"), "fullname": V("text"), "displayname": V("text"), "shortname": V("text"), "courseimage": OV("url"),
    "categoryid": V("int"), "categoryname": V("text"), "sortorder": OV("int"), "summary": V("raw"),
    "summaryformat": V("int"), "summaryfiles": opt(Multiple(Single({"filename": V("file")}))),
    "overviewfiles": Multiple(Single({"filename": V("file")})), "showactivitydates": V("bool"),
    "showcompletionconditions": V("bool"), "contacts": Multiple(Single({"id": V("int"), "fullname": V("notags")})),
    "enrollmentmethods": Multiple(V("plugin")),
    "customfields": opt(Multiple(Single({"name": V("raw"), "shortname": V("raw"), "type": V("component"),
                                         "valueraw": V("raw"), "value": V("raw")}))),
    "idnumber": OV("raw"), "format": OV("plugin"), "showgrades": OV("int"), "newsitems": OV("int"),
    "startdate": OV("int"), "enddate": OV("int"), "maxbytes": OV("int"), "showreports": OV("int"),
    "visible": OV("int"), "groupmode": OV("int"), "groupmodeforce": OV("int"), "defaultgroupingid": OV("int"),
    "enablecompletion": OV("int"), "completionnotify": OV("int"), "lang": OV("safedir"), "theme": OV("plugin"),
    "marker": OV("int"), "legacyfiles": OV("int"), "calendartype": OV("plugin"), "timecreated": OV("int"),
    "timemodified": OV("int"), "requested": OV("int"), "cacherev": OV("int"),
    "filters": opt(Multiple(Single({"filter": V("plugin"), "localstate": V("int"), "inheritedstate": V("int")}))),
    "courseformatoptions": opt(Multiple(Single({"name": V("alphanumext"), "value": V("raw")}))),
    "communicationroomname": OV("text"), "communicationroomurl": OV("raw"),
})


def course_by_field_out(call: Call, c: Row) -> dict[str, Any]:
    cat = call.state.row("SELECT name FROM course_categories WHERE id = ?", c["category"])
    return {
        "id": c["id"], "fullname": c["fullname"], "displayname": c["fullname"], "shortname": c["shortname"],
        "courseimage": course_image(call, c["id"]), "categoryid": c["category"], "categoryname": cat["name"] if cat
        else "", "sortorder": course_sortorder(call, c), "summary": c["summary"], "summaryformat": c["summaryformat"],
        "summaryfiles": [], "overviewfiles": [], "showactivitydates": True, "showcompletionconditions": True,
        "contacts": [], "enrollmentmethods": enrolment_methods(call, c["id"]),
        "customfields": course_customfields(call, c["id"]), "idnumber": c["idnumber"] or "", "format": c["format"],
        "showgrades": c["showgrades"], "newsitems": c["newsitems"], "startdate": c["startdate"],
        "enddate": c["enddate"], "maxbytes": c["maxbytes"], "showreports": c["showreports"], "visible": c["visible"],
        "groupmode": c["groupmode"], "groupmodeforce": c["groupmodeforce"],
        "defaultgroupingid": c["defaultgroupingid"], "enablecompletion": c["enablecompletion"],
        "completionnotify": c["completionnotify"], "lang": c["lang"] or "", "theme": c["theme"] or "", "marker": 0,
        "legacyfiles": 0, "calendartype": c["calendartype"] or "", "timecreated": c["timecreated"],
        "timemodified": c["timemodified"], "requested": 0, "cacherev": c["cacherev"],
        "filters": [{"filter": f, "localstate": 0, "inheritedstate": 1} for f in FILTERS],
        "courseformatoptions": [{"name": "hiddensections", "value": 1}, {"name": "coursedisplay", "value": 0},
                                {"name": "indentation", "value": "1"}]}


@register("core_course_get_courses_by_field", {"field": DV("alpha", ""), "value": DV("raw", "")},
          Single({"courses": Multiple(COURSE_DESC), "warnings": WARNINGS}))
def get_courses_by_field(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    field, value = p["field"], p["value"]
    st = call.state
    base = "SELECT * FROM course WHERE id != ?"
    if field == "":
        courses = st.rows(base + " ORDER BY id", SITE_COURSE_ID)
    elif field in {"id", "category"}:
        if not re.fullmatch(r"\d+", value):
            raise InvalidParameter(f"Invalid value for field {field}")
        courses = st.rows(base + f" AND {field} = ? ORDER BY id", SITE_COURSE_ID, int(value))
    elif field == "ids":
        ids = [int(x) for x in value.split(",") if x.strip().isdigit()]
        courses = [c for c in st.rows(base + " ORDER BY id", SITE_COURSE_ID) if c["id"] in ids]
    elif field in {"shortname", "idnumber"}:
        courses = st.rows(base + f" AND {field} = ? ORDER BY id", SITE_COURSE_ID, value)
    elif field == "sectionid":
        courses = st.rows(base + " AND id IN (SELECT course FROM course_sections WHERE id = ?)", SITE_COURSE_ID,  # noqa: S608 - identifiers come from a fixed list
                          int(value or 0))
    else:
        raise InvalidParameter("Invalid field name")
    return {"courses": [course_by_field_out(call, c) for c in courses], "warnings": []}


@register("core_course_get_courses", {"options": dflt(Single({"ids": opt(Multiple(V("int")))}), {})})
def get_courses(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    ids = (p.get("options") or {}).get("ids") or []
    st = call.state
    courses = st.rows("SELECT * FROM course ORDER BY id")
    if ids:
        courses = [c for c in courses if c["id"] in ids]
        for i in ids:
            if i not in {c["id"] for c in courses}:
                raise errors.missing_record("course", i)
    out = []
    for c in courses:
        if c["id"] == SITE_COURSE_ID and not ids:
            continue
        cat = st.row("SELECT sortorder FROM course_categories WHERE id = ?", c["category"])
        out.append({
            "id": c["id"], "shortname": c["shortname"], "categoryid": c["category"],
            "categorysortorder": course_sortorder(call, c) if cat else 0, "fullname": c["fullname"],
            "displayname": c["fullname"], "idnumber": c["idnumber"] or "", "summary": c["summary"],
            "summaryformat": c["summaryformat"], "format": c["format"], "showgrades": c["showgrades"],
            "newsitems": c["newsitems"], "startdate": c["startdate"], "enddate": c["enddate"], "numsections": 0,
            "maxbytes": c["maxbytes"], "showreports": c["showreports"], "visible": c["visible"], "hiddensections": 1,
            "groupmode": c["groupmode"], "groupmodeforce": c["groupmodeforce"],
            "defaultgroupingid": c["defaultgroupingid"], "timecreated": c["timecreated"],
            "timemodified": c["timemodified"], "enablecompletion": c["enablecompletion"],
            "completionnotify": c["completionnotify"], "lang": c["lang"] or "", "forcetheme": c["theme"] or "",
            "courseformatoptions": [{"name": "hiddensections", "value": 1}, {"name": "coursedisplay", "value": 0}],
            "showactivitydates": True, "showcompletionconditions": True,
            "customfields": course_customfields(call, c["id"])})
    return out


@register("core_course_delete_courses", {"courseids": Multiple(V("int"))}, Single({"warnings": WARNINGS}))
def delete_courses(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    warnings = []
    with st.transaction():
        for cid in p["courseids"]:
            if cid == SITE_COURSE_ID or st.get_course(cid) is None:
                warnings.append({"item": "course", "itemid": cid, "warningcode": "unknowncourseidnumber",
                                 "message": "Unknown course ID " + str(cid)})
                continue
            if not call.has("moodle/course:delete"):
                # can_delete_course() refused: a warning, not an exception (core_course_external::delete_courses;
                # its rule for a course the user created within a day is not modelled).
                warnings.append({"item": "course", "itemid": cid, "warningcode": "cannotdeletecourse",
                                 "message": f"You do not have the permission to delete this course{cid}"})
                continue
            for table, col in (("course_modules", "course"), ("course_sections", "course"), ("enrol", "courseid"),
                               ("course_completions", "course"), ("course_completion_criteria", "course")):
                st.execute(f"DELETE FROM {table} WHERE {col} = ?", cid)  # noqa: S608 - identifiers come from a fixed list
            st.execute("DELETE FROM customfield_data WHERE instanceid = ?", cid)
            st.execute("DELETE FROM course WHERE id = ?", cid)
    return {"warnings": warnings}


# ------------------------------------------------------------------ contents

MOD_INFO = {"forum": ("collaboration", "Forums"), "page": ("content", "Pages"), "quiz": ("assessment", "Quizzes"),
            "assign": ("assessment", "Assignments"), "url": ("content", "URLs"), "resource": ("content", "Files"),
            "h5pactivity": ("interactivecontent", "H5P"), "scorm": ("interactivecontent", "SCORM packages"),
            "lesson": ("interactivecontent", "Lessons")}


def completion_data(call: Call, cm: Row, userid: int) -> dict[str, Any]:
    st = call.state
    row = st.row("SELECT * FROM course_modules_completion WHERE coursemoduleid = ? AND userid = ?", cm["id"], userid)
    state = row["completionstate"] if row else 0
    return {"state": state, "timecompleted": row["timemodified"] if row and state else 0,
            "overrideby": row["overrideby"] if row else None, "valueused": False, "hascompletion": True,
            "isautomatic": cm["completion"] == 2, "istrackeduser": st.is_tracked_user(cm["course"], userid),
            "uservisible": True, "details": [], "isoverallcomplete": state in (1, 2)}


def module_out(call: Call, cm: Row) -> dict[str, Any]:
    st = call.state
    purpose, plural = MOD_INFO.get(cm["modname"], ("other", cm["modname"].capitalize() + "s"))
    ctx = st.context_for(CONTEXT_MODULE, cm["id"], st.course_context(cm["course"]))
    out: dict[str, Any] = {
        "id": cm["id"], "url": f"{call.wwwroot}/mod/{cm['modname']}/view.php?id={cm['id']}", "name": cm["name"],
        "instance": cm["instance"], "contextid": ctx, "visible": cm["visible"], "uservisible": True,
        "visibleoncoursepage": 1,
        "modicon": f"{call.wwwroot}/theme/image.php/boost/{cm['modname']}/{call.themerev}/monologo?filtericon=1",
        "modname": cm["modname"], "purpose": purpose, "branded": False, "modplural": plural, "availability": None,
        "indent": 0, "onclick": "", "afterlink": None}
    if cm["modname"] == "forum":
        out["activitybadge"] = []
        out["customdata"] = '{"trackingtype":"1"}'
    else:
        out["customdata"] = '""'
    out["noviewlink"] = False
    out["completion"] = cm["completion"]
    if cm["completion"]:
        out["completiondata"] = completion_data(call, cm, call.userid)
    out.update({"downloadcontent": 1, "dates": [], "groupmode": 0})
    if cm["modname"] == "page":
        out["contents"] = [{"type": "file", "filename": "index.html", "filepath": "/", "filesize": 0,
                            "fileurl": f"{call.wwwroot}/webservice/pluginfile.php/{ctx}/mod_page/content/index.html"
                                       "?forcedownload=1", "timecreated": None, "timemodified": cm["added"],
                            "sortorder": 1, "userid": None, "author": None, "license": None}]
        out["contentsinfo"] = {"filescount": 1, "filessize": 0, "lastmodified": cm["added"], "mimetypes": [],
                               "repositorytype": ""}
    return out


@register("core_course_get_contents", {"courseid": V("int"), "options": dflt(
    Multiple(Single({"name": V("alphanum"), "value": V("raw")})), [])})
def get_contents(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    course = st.row("SELECT * FROM course WHERE id = ?", p["courseid"])
    if course is None:
        raise errors.missing_record("course", p["courseid"])
    if not call.has("moodle/course:view") and not st.is_enrolled(course["id"], call.userid):
        raise errors.moodle_exception("requireloginerror", "Course or activity not accessible.")
    opts = {o["name"].lower(): o["value"] for o in p["options"]}
    for name in ("excludemodules", "excludecontents", "includestealthmodules"):
        if name in opts and opts[name] not in {"0", "1"}:
            raise InvalidParameter(f"Invalid value for option {name}")
    for name in ("sectionid", "sectionnumber", "cmid"):
        if name in opts and not re.fullmatch(r"\d+", opts[name]):
            raise InvalidParameter(f"Invalid value for option {name}")
    sections = []
    for s in st.rows("SELECT * FROM course_sections WHERE course = ? ORDER BY section", course["id"]):
        if ("sectionid" in opts and s["id"] != int(opts["sectionid"])) or \
                ("sectionnumber" in opts and s["section"] != int(opts["sectionnumber"])):
            continue
        cms = st.rows("SELECT * FROM course_modules WHERE section = ? ORDER BY id", s["id"])
        if "modname" in opts:
            cms = [cm for cm in cms if cm["modname"] == opts["modname"]]
        if "cmid" in opts:
            cms = [cm for cm in cms if cm["id"] == int(opts["cmid"])]
        mods = [] if opts.get("excludemodules") == "1" else [module_out(call, cm) for cm in cms]
        if opts.get("excludecontents") == "1":
            for m in mods:
                m.pop("contents", None)
                m.pop("contentsinfo", None)
        sections.append({"id": s["id"], "name": s["name"] or ("General" if s["section"] == 0 else
                                                              f"Topic {s['section']}"),
                         "visible": 1, "summary": "", "summaryformat": 1, "section": s["section"],
                         "hiddenbynumsections": 0, "uservisible": True, "component": None, "itemid": None,
                         "modules": mods})
    return sections
