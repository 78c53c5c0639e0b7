"""core_cohort_*: cohorts in system or category context, members (warnings for unknown users/cohorts)."""

from __future__ import annotations

from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.errors import InvalidParameter
from creditbridge.sandbox.functions import DV, OV, WARNINGS, Call, V, register
from creditbridge.sandbox.state import CONTEXT_COURSECAT, CONTEXT_SYSTEM, SYSTEM_CONTEXT_ID, Row
from creditbridge.sandbox.wsformat import Multiple, Single, dflt, opt

TYPE_VALUE = Single({"type": V("alphanumext"), "value": V("raw")})
COHORT_DESC = Single({"id": V("int"), "name": V("raw"), "idnumber": V("raw"), "description": V("raw"),
                      "descriptionformat": V("int"), "visible": V("bool"), "theme": OV("theme"),
                      "customfields": opt(Multiple(Single({"name": V("raw"), "shortname": V("raw"),
                                                           "type": V("component"), "valueraw": V("raw"),
                                                           "value": V("raw")})))})


def cohort_out(c: Row, *, customfields: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c["id"], "name": c["name"], "idnumber": c["idnumber"] or "",
                           "description": c["description"] or "", "descriptionformat": c["descriptionformat"],
                           "visible": bool(c["visible"]), "theme": c["theme"] or ""}
    if customfields:
        out["customfields"] = []
    return out


@register("core_cohort_create_cohorts", {"cohorts": Multiple(Single({
    "categorytype": Single({"type": V("text"), "value": V("raw")}), "name": V("raw"), "idnumber": V("raw"),
    "description": OV("raw"), "descriptionformat": DV("int", 1), "visible": OV("bool"), "theme": OV("theme"),
    "customfields": opt(Multiple(Single({"shortname": V("alphanumext"), "value": V("raw")})))}))},
    Multiple(COHORT_DESC))
def create_cohorts(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    with st.transaction():
        for cohort in p["cohorts"]:
            ctype, cvalue = cohort["categorytype"]["type"], cohort["categorytype"]["value"]
            if ctype == "system":
                contextid = SYSTEM_CONTEXT_ID
            elif ctype in {"id", "idnumber"}:
                cat = st.row(f"SELECT id FROM course_categories WHERE {ctype} = ?", cvalue)  # noqa: S608 - identifiers come from a fixed list
                if cat is None:
                    raise InvalidParameter(f"category not exists: category {ctype} = {cvalue}")
                contextid = st.context_for(CONTEXT_COURSECAT, cat["id"])
            else:
                raise InvalidParameter("category type must be id, idnumber or system:" + ctype)
            call.require("moodle/cohort:manage")
            if cohort["idnumber"] and st.scalar("SELECT 1 FROM cohort WHERE idnumber = ?", cohort["idnumber"]):
                raise InvalidParameter(f"record already exists: idnumber={cohort['idnumber']}")
            now = call.now()
            cid = st.insert("cohort", {"contextid": contextid, "name": cohort["name"], "idnumber": cohort["idnumber"],
                                       "description": cohort.get("description") or "",
                                       "descriptionformat": cohort["descriptionformat"],
                                       "visible": int(cohort.get("visible", True) is not False),
                                       "theme": cohort.get("theme") or "", "timecreated": now, "timemodified": now})
            created = st.row("SELECT * FROM cohort WHERE id = ?", cid)
            assert created is not None
            out.append(cohort_out(created, customfields=False))
    return out


@register("core_cohort_add_cohort_members", {"members": Multiple(Single({"cohorttype": TYPE_VALUE,
                                                                         "usertype": TYPE_VALUE}))},
          Single({"warnings": WARNINGS}))
def add_cohort_members(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    warnings = []
    with st.transaction():
        for m in p["members"]:
            ct, cv = m["cohorttype"]["type"], m["cohorttype"]["value"]
            ut, uv = m["usertype"]["type"], m["usertype"]["value"]
            if ct not in {"id", "idnumber"}:
                warnings.append({"warningcode": "1", "message": f"invalid parameter: cohortype={ct}"})
                continue
            if ut not in {"id", "username"}:
                warnings.append({"warningcode": "1", "message": f"invalid parameter: usertype={ut}"})
                continue
            cohort = st.row(f"SELECT id FROM cohort WHERE {ct} = ?", cv)  # noqa: S608 - identifiers come from a fixed list
            if cohort is None:
                warnings.append({"warningcode": "2", "message": f"cohort {ct}={cv} not exists"})
                continue
            user = st.row(f"SELECT id FROM user WHERE {ut} = ? AND deleted = 0", uv)  # noqa: S608 - identifiers come from a fixed list
            if user is None:
                warnings.append({"warningcode": "2", "message": f"user {ut}={uv} not exists"})
                continue
            if st.scalar("SELECT 1 FROM cohort_members WHERE cohortid = ? AND userid = ?", cohort["id"], user["id"]):
                warnings.append({"warningcode": "3", "message": f"record already exists: cohort({ct}={cv} {ut}={uv})"})
                continue
            call.require("moodle/cohort:assign")
            st.insert("cohort_members", {"cohortid": cohort["id"], "userid": user["id"], "timeadded": call.now()})
            st.cohort_member_added(cohort["id"], user["id"])
    return {"warnings": warnings}


@register("core_cohort_delete_cohort_members", {"members": Multiple(Single({"cohortid": V("int"),
                                                                            "userid": V("int")}))},
          None, returns_nothing=True)
def delete_cohort_members(call: Call, p: dict[str, Any]) -> None:
    st = call.state
    with st.transaction():
        for m in p["members"]:
            if st.row("SELECT id FROM cohort WHERE id = ?", m["cohortid"]) is None:
                raise errors.missing_record("cohort", m["cohortid"])
            if st.row("SELECT id FROM user WHERE id = ? AND deleted = 0", m["userid"]) is None:
                raise errors.missing_record("user", m["userid"])
            call.require("moodle/cohort:assign")
            st.execute("DELETE FROM cohort_members WHERE cohortid = ? AND userid = ?", m["cohortid"], m["userid"])
            st.cohort_member_removed(m["cohortid"], m["userid"])


@register("core_cohort_get_cohort_members", {"cohortids": Multiple(V("int"))},
          Multiple(Single({"cohortid": V("int"), "userids": Multiple(V("int"))})))
def get_cohort_members(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    out = []
    for cid in p["cohortids"]:
        if st.row("SELECT id FROM cohort WHERE id = ?", cid) is None:
            raise errors.missing_record("cohort", cid)
        call.require("moodle/cohort:view")
        ids = [r["id"] for r in st.rows("SELECT u.id FROM user u JOIN cohort_members m ON m.userid = u.id "
                                        "WHERE m.cohortid = ? ORDER BY u.lastname, u.firstname", cid)]
        out.append({"cohortid": cid, "userids": ids})
    return out


@register("core_cohort_get_cohorts", {"cohortids": dflt(Multiple(V("int")), [])}, Multiple(COHORT_DESC))
def get_cohorts(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    st = call.state
    if not p["cohortids"]:
        return [cohort_out(c) for c in st.rows("SELECT * FROM cohort ORDER BY id")]
    out = []
    for cid in p["cohortids"]:
        c = st.row("SELECT * FROM cohort WHERE id = ?", cid)
        if c is None:
            raise errors.missing_record("cohort", cid)
        out.append(cohort_out(c))
    return out


def _context_chain(call: Call, contextid: int) -> list[int]:
    chain = []
    ctx = call.state.context(contextid)
    while ctx is not None:
        chain.append(ctx["id"])
        ctx = call.state.context(ctx["parentid"]) if ctx["parentid"] else None
    return chain


@register("core_cohort_search_cohorts", {
    "query": V("raw"), "context": Single({"contextid": OV("int"), "contextlevel": OV("alpha"),
                                         "instanceid": OV("int")}),
    "includes": DV("alpha", "parents"), "limitfrom": DV("int", 0), "limitnum": DV("int", 25)},
    Single({"cohorts": Multiple(COHORT_DESC)}))
def search_cohorts(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    st = call.state
    ctx = p["context"]
    if ctx.get("contextid"):
        contextid = ctx["contextid"]
        if st.context(contextid) is None:
            raise errors.missing_record("context", contextid)
    else:
        level = {"system": CONTEXT_SYSTEM, "coursecat": CONTEXT_COURSECAT}.get(ctx.get("contextlevel") or "")
        if level is None:
            raise InvalidParameter("Missing parameters")
        contextid = SYSTEM_CONTEXT_ID if level == CONTEXT_SYSTEM else st.context_for(level, ctx.get("instanceid") or 0)
    if p["includes"] not in {"self", "parents", "all"}:
        raise InvalidParameter("Invalid parameter includes")
    allowed = {contextid}
    if p["includes"] in {"parents", "all"}:
        allowed |= set(_context_chain(call, contextid))
    query = p["query"].lower()
    found = []
    for c in st.rows("SELECT * FROM cohort ORDER BY name, idnumber, id"):
        in_scope = c["contextid"] in allowed or (p["includes"] == "all" and contextid in
                                                 _context_chain(call, c["contextid"]))
        text = f"{c['name']} {c['idnumber'] or ''} {c['description'] or ''}".lower()
        if in_scope and query in text:
            found.append(cohort_out(c))
    # Moodle hands limitfrom to cohort_get_all_cohorts()/cohort_get_cohorts() as their $page: the rows start at
    # limitfrom * limitnum, and limitnum 0 is every row whatever limitfrom says.
    if not p["limitnum"]:
        return {"cohorts": found}
    start = p["limitfrom"] * p["limitnum"]
    return {"cohorts": found[start:start + p["limitnum"]]}
