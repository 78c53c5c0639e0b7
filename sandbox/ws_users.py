"""core_user_*: create (one transaction), update (warnings per user), lookups, delete; custom profile fields."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from creditbridge.sandbox import errors
from creditbridge.sandbox.errors import InvalidParameter, WsException
from creditbridge.sandbox.functions import DV, OV, WARNINGS, Call, V, register
from creditbridge.sandbox.state import ADMIN_ID, CONTEXT_USER, GUEST_ID, Row
from creditbridge.sandbox.wsformat import LANGS, THEMES, Multiple, Single, clean_param, opt, validate_email

AUTH_PLUGINS = {"manual", "nologin", "email", "webservice", "oauth2", "lti", "mnet"}
CUSTOMFIELD_IN = Multiple(Single({"type": V("alphanumext"), "value": V("raw")}))
PREFERENCE_IN = Multiple(Single({"type": V("raw"), "value": V("raw")}))

USER_FIELDS_IN: dict[str, Any] = {
    "username": V("username"), "auth": DV("plugin", "manual"), "password": OV("raw"),
    "createpassword": OV("bool"), "firstname": V("notags"), "lastname": V("notags"), "email": V("raw_trimmed"),
    "maildisplay": OV("int"), "city": OV("notags"), "country": OV("alpha"), "timezone": OV("timezone"),
    "description": OV("raw"), "firstnamephonetic": OV("notags"), "lastnamephonetic": OV("notags"),
    "middlename": OV("notags"), "alternatename": OV("notags"), "interests": OV("text"),
    "idnumber": DV("raw", ""), "institution": OV("text"), "department": OV("text"), "phone1": OV("notags"),
    "phone2": OV("notags"), "address": OV("text"), "lang": DV("lang", "en"), "calendartype": DV("plugin", "gregorian"),
    "theme": OV("plugin"), "mailformat": OV("int"), "customfields": opt(CUSTOMFIELD_IN),
    "preferences": opt(PREFERENCE_IN),
}
UPDATE_FIELDS_IN: dict[str, Any] = {
    "id": V("int"), "username": OV("username"), "auth": OV("plugin"), "suspended": OV("bool"),
    "password": OV("raw"), "firstname": OV("notags"), "lastname": OV("notags"), "email": OV("raw_trimmed"),
    "maildisplay": OV("int"), "city": OV("notags"), "country": OV("alpha"), "timezone": OV("timezone"),
    "description": OV("raw"), "userpicture": OV("int"), "firstnamephonetic": OV("notags"),
    "lastnamephonetic": OV("notags"), "middlename": OV("notags"), "alternatename": OV("notags"),
    "interests": OV("text"), "idnumber": OV("raw"), "institution": OV("text"), "department": OV("text"),
    "phone1": OV("notags"), "phone2": OV("notags"), "address": OV("text"), "lang": OV("lang"),
    "calendartype": OV("plugin"), "theme": OV("plugin"), "mailformat": OV("int"),
    "customfields": opt(Multiple(Single({"type": V("alphanumext"), "value": V("raw")}))),
    "preferences": opt(Multiple(Single({"type": V("raw"), "value": V("raw")}))),
}
STORED_COLUMNS = ("auth", "firstname", "lastname", "email", "maildisplay", "city", "country", "timezone", "description",
                  "interests", "idnumber", "institution", "department", "phone1", "phone2", "address", "lang",
                  "calendartype", "theme", "mailformat")

USER_DESC = Single({
    "id": V("int"), "username": OV("raw"), "firstname": OV("notags"), "lastname": OV("notags"),
    "fullname": V("notags"), "email": OV("text"), "address": OV("text"), "phone1": OV("notags"),
    "phone2": OV("notags"), "department": OV("text"), "institution": OV("text"), "idnumber": OV("raw"),
    "interests": OV("text"), "firstaccess": OV("int"), "lastaccess": OV("int"), "auth": OV("plugin"),
    "suspended": OV("bool"), "confirmed": OV("bool"), "lang": OV("lang"), "calendartype": OV("plugin"),
    "theme": OV("plugin"), "timezone": OV("timezone"), "mailformat": OV("int"), "trackforums": OV("int"),
    "description": OV("raw"), "descriptionformat": OV("int"), "city": OV("notags"), "country": OV("alpha"),
    "profileimageurlsmall": V("url"), "profileimageurl": V("url"),
    "customfields": opt(Multiple(Single({"type": V("alpha"), "value": V("raw"), "displayvalue": OV("raw"),
                                         "name": V("raw"), "shortname": V("raw")}))),
    "preferences": opt(Multiple(Single({"name": V("raw"), "value": V("raw")}))),
})


# ------------------------------------------------------------------ helpers shared with enrol

def profile_fields(call: Call) -> list[Row]:
    return call.state.rows("SELECT * FROM user_info_field ORDER BY sortorder, id")


def _php_truthy(value: str | None) -> bool:
    return bool(value) and value != "0"


def custom_fields(call: Call, userid: int, *, display: bool = True) -> list[dict[str, Any]]:
    """profile_get_user_fields_with_data(): fields with data; checkboxes always (unset reads as "0")."""
    data = {r["fieldid"]: r["data"] for r in call.state.rows("SELECT * FROM user_info_data WHERE userid = ?", userid)}
    out = []
    for f in profile_fields(call):
        value = data.get(f["id"])
        if f["datatype"] == "checkbox":
            value = value if value not in (None, "") else "0"
        if value in (None, ""):
            continue
        item: dict[str, Any] = {"type": f["datatype"], "value": value}
        if display:
            item["displayvalue"] = ("Yes" if _php_truthy(value) else "No") if f["datatype"] == "checkbox" else value
        item.update({"name": f["name"], "shortname": f["shortname"]})
        out.append(item)
    return out


def picture_urls(call: Call) -> dict[str, str]:
    base = f"{call.wwwroot}/theme/image.php/boost/core/{call.themerev}/u"
    return {"profileimageurlsmall": f"{base}/f2", "profileimageurl": f"{base}/f1"}


def fullname(user: Row) -> str:
    return f"{user['firstname']} {user['lastname']}"


def user_details(call: Call, user: Row, *, courseid: int | None = None) -> dict[str, Any]:
    """user_get_user_details() as the site administrator sees it (in a course: the participant view)."""
    d: dict[str, Any] = {"id": user["id"], "username": user["username"], "firstname": user["firstname"],
                         "lastname": user["lastname"], "fullname": fullname(user)}
    # Another user's email only with moodle/site:viewuseridentity (roles.json: the docs' role without it gets
    # no email key); maildisplay "course members only" would show it to someone sharing a course, which
    # creditbridge's token user never does.
    if user["id"] == call.userid or call.has("moodle/site:viewuseridentity"):
        d["email"] = user["email"]
    for key in ("address", "phone1", "phone2"):
        if user[key]:
            d[key] = user[key]
    d["department"] = user["department"] or ""
    for key in ("institution", "idnumber", "interests"):
        if user[key]:
            d[key] = user[key]
    d["firstaccess"], d["lastaccess"] = user["firstaccess"], user["lastaccess"]
    if courseid is not None:
        d["lastcourseaccess"] = 0
    else:
        d.update({"auth": user["auth"], "suspended": bool(user["suspended"]), "confirmed": bool(user["confirmed"]),
                  "lang": user["lang"], "theme": user["theme"] or "", "timezone": user["timezone"],
                  "mailformat": user["mailformat"], "trackforums": 0})
        if user["description"]:
            d["description"], d["descriptionformat"] = user["description"], user["descriptionformat"]
    if user["city"]:
        d["city"] = user["city"]
    if user["country"]:
        d["country"] = user["country"]
    d.update(picture_urls(call))
    d["customfields"] = custom_fields(call, user["id"], display=courseid is None)
    if courseid is None and user["id"] == call.userid:
        prefs = [{"name": r["name"], "value": r["value"]} for r in call.state.rows(
            "SELECT * FROM user_preferences WHERE userid = ? ORDER BY name DESC", user["id"])]
        d["preferences"] = [*prefs, {"name": "_lastloaded", "value": call.now()}]
    return d


def save_profile_data(call: Call, userid: int, fields: list[dict[str, str]]) -> None:
    """profile_save_data(): unknown shortnames are ignored, a menu value outside the options is dropped,
    checkbox and text values are stored as given; the "unique" flag is only enforced by the web form."""
    known = {f["shortname"]: f for f in profile_fields(call)}
    for item in fields:
        f = known.get(item["type"])
        if f is None:
            continue
        value = item["value"]
        if f["datatype"] == "menu" and value not in f["param1"].split("\n"):
            continue
        call.state.execute("INSERT OR REPLACE INTO user_info_data (userid, fieldid, data) VALUES (?, ?, ?)",
                           userid, f["id"], value)


PASSWORD_RULES = (
    (lambda p: len(p) >= 8, "Passwords must be at least 8 characters long."),
    (lambda p: len(re.findall(r"[0-9]", p)) >= 1, "Passwords must have at least 1 digit(s)."),
    (lambda p: len(re.findall(r"[a-z]", p)) >= 1, "Passwords must have at least 1 lower case letter(s)."),
    (lambda p: len(re.findall(r"[A-Z]", p)) >= 1, "Passwords must have at least 1 upper case letter(s)."),
    (lambda p: len(re.findall(r"[^a-zA-Z0-9]", p)) >= 1,
     "The password must have at least 1 special character(s) such as *, -, or #."),
)


def check_password_policy(password: str) -> None:
    problems = "".join(f"<div>{msg}</div>" for ok, msg in PASSWORD_RULES if not ok(password))
    if problems:
        raise errors.moodle_exception(problems)


def _hash_password(password: str) -> str:
    return "sha256$" + hashlib.sha256(password.encode()).hexdigest()


def _email_taken(call: Call, email: str, *, exclude: int | None = None) -> bool:
    return bool(call.state.scalar("SELECT 1 FROM user WHERE lower(email) = lower(?) AND deleted = 0 AND id != ?",
                                  email, exclude or 0))


# ------------------------------------------------------------------ functions

@register("core_user_create_users", {"users": Multiple(Single(USER_FIELDS_IN))},
          Multiple(Single({"id": V("int"), "username": V("raw")})))
def create_users(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    call.require("moodle/user:create")
    st = call.state
    created = []
    with st.transaction():
        for user in p["users"]:
            for name in ("username", "firstname", "lastname"):
                if user[name].strip() == "":
                    raise InvalidParameter(f"The field {name} cannot be blank")
            if st.scalar("SELECT 1 FROM user WHERE username = ?", user["username"]):
                raise InvalidParameter(f"Username already exists: {user['username']}")
            if user["auth"] not in AUTH_PLUGINS:
                raise InvalidParameter(f"Invalid authentication type: {user['auth']}")
            if user["lang"] not in LANGS:
                raise InvalidParameter(f"Invalid language code: {user['lang']}")
            if user.get("theme") and user["theme"] not in THEMES:
                raise InvalidParameter(f"Invalid theme: {user['theme']}")
            internal = user["auth"] in {"manual", "email"}
            if internal and not user.get("password") and not user.get("createpassword"):
                raise InvalidParameter("Invalid password: you must provide a password, or set createpassword.")
            if not validate_email(user["email"]):
                raise InvalidParameter(f"Email address is invalid: {user['email']}")
            if _email_taken(call, user["email"]):
                raise InvalidParameter(f"Email address already exists: {user['email']}")
            password = ""
            if internal and not user.get("createpassword"):
                check_password_policy(user["password"])
                password = _hash_password(user["password"])
            now = call.now()
            row = {k: user[k] for k in STORED_COLUMNS if user.get(k) is not None}
            row.update({"username": user["username"], "password": password, "timecreated": now, "timemodified": now,
                        "confirmed": 1})
            uid = st.insert("user", row)
            st.context_for(CONTEXT_USER, uid)
            save_profile_data(call, uid, user.get("customfields") or [])
            for pref in user.get("preferences") or []:
                st.execute("INSERT OR REPLACE INTO user_preferences (userid, name, value) VALUES (?, ?, ?)",
                           uid, pref["type"], pref["value"])
            created.append({"id": uid, "username": user["username"]})
    return created


@register("core_user_update_users", {"users": Multiple(Single(UPDATE_FIELDS_IN))},
          Single({"warnings": WARNINGS}))
def update_users(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    call.require("moodle/user:update")
    st = call.state
    warnings = []
    with st.transaction():
        for user in p["users"]:
            try:
                with st.savepoint():
                    _update_one(call, user)
            except WsException as e:
                warnings.append({"item": "user", "itemid": user["id"], "warningcode": e.errorcode,
                                 "message": e.message})
    return {"warnings": warnings}


def _update_one(call: Call, user: dict[str, Any]) -> None:
    st = call.state
    existing = st.row("SELECT * FROM user WHERE id = ?", user["id"])
    if existing is None:
        raise errors.moodle_exception("invaliduserid", "Invalid user ID")
    if existing["deleted"]:
        raise errors.moodle_exception("usernotexists", "User does not exist")
    if existing["id"] == GUEST_ID:
        raise errors.moodle_exception("guestnoeditprofileother", "The guest user profile cannot be edited.")
    if user.get("email") is not None and user["email"] != existing["email"]:
        if not validate_email(user["email"]):
            raise errors.moodle_exception("useremailinvalid")
        if _email_taken(call, user["email"], exclude=existing["id"]):
            raise errors.moodle_exception("useremailduplicate")
    changes = {k: user[k] for k in STORED_COLUMNS if user.get(k) is not None}
    if user.get("suspended") is not None:
        changes["suspended"] = int(user["suspended"])
    if user.get("username") is not None and user["username"] != existing["username"]:
        if st.scalar("SELECT 1 FROM user WHERE username = ? AND id != ?", user["username"], existing["id"]):
            raise errors.WsException("dml_write_exception", "dmlwriteexception", "Error writing to database")
        changes["username"] = user["username"]
    if user.get("password"):
        check_password_policy(user["password"])
        changes["password"] = _hash_password(user["password"])
    changes["timemodified"] = call.now()
    st.update("user", existing["id"], changes)
    save_profile_data(call, existing["id"], user.get("customfields") or [])
    for pref in user.get("preferences") or []:
        st.execute("INSERT OR REPLACE INTO user_preferences (userid, name, value) VALUES (?, ?, ?)",
                   existing["id"], pref["type"], pref["value"])


_FIELD_TYPES = {"id": "int", "idnumber": "raw", "username": "username", "email": "raw_trimmed"}


@register("core_user_get_users_by_field", {"field": V("alpha"), "values": Multiple(V("raw"))}, Multiple(USER_DESC))
def get_users_by_field(call: Call, p: dict[str, Any]) -> list[dict[str, Any]]:
    field = p["field"]
    if field not in _FIELD_TYPES:
        e = errors.coding_error("invalid field parameter")
        e.debuginfo = f"The search field '{field}' is not supported, look at the web service documentation"
        raise e
    cleaned = []
    for value in p["values"]:
        c = clean_param(value, _FIELD_TYPES[field])
        if str(c) != value:
            raise InvalidParameter(f"The field '{field}' value is invalid: {value}(cleaned value: {c})")
        cleaned.append(c)
    if not cleaned:
        return []
    marks = ",".join("?" for _ in cleaned)
    users = call.state.rows(f"SELECT * FROM user WHERE {field} IN ({marks}) ORDER BY id", *cleaned)  # noqa: S608 - identifiers come from a fixed list
    # Moodle returns a user only when the searched field is in what the caller may see: field=email without
    # moodle/site:viewuseridentity finds nobody (roles.json).
    found = (user_details(call, u) for u in users)
    return [d for d in found if d.get(field) not in (None, "")]


_CRITERIA_EQUAL = {"id", "idnumber", "username", "auth"}
_CRITERIA_LIKE = {"email", "lastname", "firstname"}


def _like(pattern: str) -> re.Pattern[str]:
    parts = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{parts}$", re.I | re.S)


@register("core_user_get_users", {"criteria": Multiple(Single({"key": V("alpha"), "value": V("raw")}))},
          Single({"users": Multiple(USER_DESC), "warnings": WARNINGS}))
def get_users(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    warnings = []
    checks = []
    used: set[str] = set()
    for crit in p["criteria"]:
        key = crit["key"]
        if key in used:
            raise errors.moodle_exception("keyalreadyset", f"The key {key} can only be sent once")
        used.add(key)
        if key in _CRITERIA_EQUAL:
            checks.append((key, False, crit["value"]))
        elif key in _CRITERIA_LIKE:
            checks.append((key, True, crit["value"]))
        else:
            warnings.append({"item": key, "warningcode": "invalidfieldparameter",
                             "message": f"The search key '{key}' is not supported, look at the web service "
                                        "documentation"})
    found = []
    for u in call.state.rows("SELECT * FROM user WHERE deleted = 0 ORDER BY id"):
        if all(_like(v).match(str(u[k] or "")) if like else str(u[k]) == v for k, like, v in checks):
            found.append(user_details(call, u))
    return {"users": found, "warnings": warnings}


@register("core_user_delete_users", {"userids": Multiple(V("int"))}, None, returns_nothing=True)
def delete_users(call: Call, p: dict[str, Any]) -> None:
    call.require("moodle/user:delete")
    st = call.state
    with st.transaction():
        for uid in p["userids"]:
            user = st.row("SELECT * FROM user WHERE id = ? AND deleted = 0", uid)
            if user is None:
                raise errors.invalid_user()
            if uid == ADMIN_ID:
                raise errors.moodle_exception("useradminodelete", "Administrator accounts cannot be deleted.")
            if uid == GUEST_ID:
                raise errors.moodle_exception("guestnodeleted", "Guest user account cannot be deleted")
            if uid == call.userid:
                raise errors.moodle_exception("usernotdeletederror", "User not deleted - error")
            delete_user(call, user)


def delete_user(call: Call, user: Row) -> None:
    """delete_user(): unenrol, leave cohorts, drop profile data, anonymise username/email/idnumber."""
    st = call.state
    now = call.now()
    st.execute("DELETE FROM user_enrolments WHERE userid = ?", user["id"])
    st.execute("DELETE FROM role_assignments WHERE userid = ?", user["id"])
    st.execute("DELETE FROM cohort_members WHERE userid = ?", user["id"])
    st.execute("DELETE FROM user_info_data WHERE userid = ?", user["id"])
    st.execute("DELETE FROM user_preferences WHERE userid = ?", user["id"])
    st.execute("DELETE FROM external_tokens WHERE userid = ?", user["id"])
    # Moodle's own anonymisation: username becomes email.time, email becomes md5(old username).
    email = hashlib.md5(user["username"].encode(), usedforsecurity=False).hexdigest()
    st.update("user", user["id"], {"deleted": 1, "username": f"{user['email']}.{now}", "idnumber": "",
                                   "email": email, "timemodified": now})
