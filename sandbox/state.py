"""The sandbox's site data in SQLite (stdlib sqlite3): Moodle's tables, reduced to the columns the emulated
web services read and write, plus the server-side operations Moodle has no web service for (adding
activities, completion criteria, the completion cron, minting tokens).

Ids come from per-table sequences that, like PostgreSQL's, are not given back when a transaction rolls
back: a failed core_user_create_users batch still uses up the id of the user it inserted first, which is
what the recorded transcripts show.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Row = dict[str, Any]
Listener = Callable[[dict[str, Any]], None]

ADMIN_ID, GUEST_ID, SITE_COURSE_ID, SYSTEM_CONTEXT_ID = 2, 1, 1, 1
CONTEXT_SYSTEM, CONTEXT_USER, CONTEXT_COURSECAT, CONTEXT_COURSE, CONTEXT_MODULE = 10, 30, 40, 50, 70
ROLES = {1: "manager", 2: "coursecreator", 3: "editingteacher", 4: "teacher", 5: "student", 6: "guest",
         7: "user", 8: "frontpage"}
STUDENT_ROLE = 5
# Token kinds: a site administrator's token, a user allowed to use REST but holding no admin capability,
# and a user lacking webservice/rest:use (the three the recorded transcripts exercise).
TOKEN_ADMIN, TOKEN_USER, TOKEN_NOREST = "admin", "user", "norest"
# The system role given to creditbridge's token user (a custom role, after Moodle's eight standard ones).
CREDITBRIDGE_ROLE = 9
# enrol_manual's instance field customint1 / plugin setting sendcoursewelcomemessage: 0 = do not send,
# 1 = from the course contact (Moodle 4.5's default), 2 = from the key holder, 3 = from the no-reply address.
WELCOME_DEFAULT = 1
# The enrol table's columns enrol_self and enrol_cohort use (Moodle's names): customint4 = send the course
# welcome message, customint5 = only members of this cohort may self-enrol, customint6 = new enrolments allowed;
# enrol_cohort's customint1 = the cohort whose members are enrolled. name tells creditbridge's instances apart.
ENROL_COLUMNS = (("name", "TEXT"), ("customint4", "INTEGER DEFAULT 0"), ("customint5", "INTEGER DEFAULT 0"),
                 ("customint6", "INTEGER DEFAULT 0"), ("enrolstartdate", "INTEGER DEFAULT 0"),
                 ("enrolenddate", "INTEGER DEFAULT 0"))
ENROL_PLUGINS_DEFAULT = "manual,guest,self,cohort"

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS user (
  id INTEGER PRIMARY KEY, auth TEXT DEFAULT 'manual', confirmed INTEGER DEFAULT 1, deleted INTEGER DEFAULT 0,
  suspended INTEGER DEFAULT 0, username TEXT UNIQUE, password TEXT DEFAULT '', idnumber TEXT DEFAULT '',
  firstname TEXT, lastname TEXT, email TEXT, phone1 TEXT DEFAULT '', phone2 TEXT DEFAULT '',
  institution TEXT DEFAULT '', department TEXT DEFAULT '', address TEXT DEFAULT '', city TEXT DEFAULT '',
  country TEXT DEFAULT '', lang TEXT DEFAULT 'en', calendartype TEXT DEFAULT 'gregorian', theme TEXT DEFAULT '',
  timezone TEXT DEFAULT '99', firstaccess INTEGER DEFAULT 0, lastaccess INTEGER DEFAULT 0, mailformat INTEGER DEFAULT 1,
  maildisplay INTEGER DEFAULT 2, description TEXT, descriptionformat INTEGER DEFAULT 1, interests TEXT DEFAULT '',
  timecreated INTEGER DEFAULT 0, timemodified INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS user_preferences (userid INTEGER, name TEXT, value TEXT, PRIMARY KEY (userid, name));
CREATE TABLE IF NOT EXISTS user_info_field (
  id INTEGER PRIMARY KEY, shortname TEXT UNIQUE, name TEXT, datatype TEXT, param1 TEXT DEFAULT '',
  forceunique INTEGER DEFAULT 0, sortorder INTEGER);
CREATE TABLE IF NOT EXISTS user_info_data (userid INTEGER, fieldid INTEGER, data TEXT, PRIMARY KEY (userid, fieldid));
CREATE TABLE IF NOT EXISTS external_tokens (token TEXT PRIMARY KEY, userid INTEGER, kind TEXT, timecreated INTEGER);
CREATE TABLE IF NOT EXISTS context (id INTEGER PRIMARY KEY, contextlevel INTEGER, instanceid INTEGER, parentid INTEGER,
  UNIQUE (contextlevel, instanceid));
CREATE TABLE IF NOT EXISTS course_categories (
  id INTEGER PRIMARY KEY, name TEXT, idnumber TEXT, description TEXT DEFAULT '', descriptionformat INTEGER DEFAULT 1,
  parent INTEGER DEFAULT 0, sortorder INTEGER, visible INTEGER DEFAULT 1, visibleold INTEGER DEFAULT 1,
  timemodified INTEGER, depth INTEGER, path TEXT, theme TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS course (
  id INTEGER PRIMARY KEY, category INTEGER, fullname TEXT, shortname TEXT, idnumber TEXT DEFAULT '',
  summary TEXT DEFAULT '', summaryformat INTEGER DEFAULT 1, format TEXT DEFAULT 'topics', showgrades INTEGER DEFAULT 1,
  newsitems INTEGER DEFAULT 5, startdate INTEGER DEFAULT 0, enddate INTEGER DEFAULT 0, maxbytes INTEGER DEFAULT 0,
  showreports INTEGER DEFAULT 0, visible INTEGER DEFAULT 1, groupmode INTEGER DEFAULT 0,
  groupmodeforce INTEGER DEFAULT 0, defaultgroupingid INTEGER DEFAULT 0, enablecompletion INTEGER DEFAULT 1,
  completionnotify INTEGER DEFAULT 0, lang TEXT DEFAULT '', theme TEXT DEFAULT '', marker INTEGER DEFAULT 0,
  calendartype TEXT DEFAULT '', timecreated INTEGER, timemodified INTEGER, cacherev INTEGER DEFAULT 0,
  formatoptions TEXT DEFAULT '{}', sortorder INTEGER);
CREATE TABLE IF NOT EXISTS customfield_field (
  id INTEGER PRIMARY KEY, shortname TEXT UNIQUE, name TEXT, type TEXT, configdata TEXT, sortorder INTEGER);
CREATE TABLE IF NOT EXISTS customfield_data (fieldid INTEGER, instanceid INTEGER, value TEXT,
  PRIMARY KEY (fieldid, instanceid));
CREATE TABLE IF NOT EXISTS course_sections (id INTEGER PRIMARY KEY, course INTEGER, section INTEGER, name TEXT);
CREATE TABLE IF NOT EXISTS course_modules (
  id INTEGER PRIMARY KEY, course INTEGER, modname TEXT, instance INTEGER, section INTEGER, idnumber TEXT DEFAULT '',
  name TEXT, completion INTEGER DEFAULT 0, visible INTEGER DEFAULT 1, added INTEGER);
CREATE TABLE IF NOT EXISTS course_modules_completion (
  id INTEGER PRIMARY KEY, coursemoduleid INTEGER, userid INTEGER, completionstate INTEGER, overrideby INTEGER,
  timemodified INTEGER, UNIQUE (coursemoduleid, userid));
CREATE TABLE IF NOT EXISTS course_completion_aggr_methd (course INTEGER PRIMARY KEY, method INTEGER);
CREATE TABLE IF NOT EXISTS course_completion_criteria (
  id INTEGER PRIMARY KEY, course INTEGER, criteriatype INTEGER, moduleinstance INTEGER);
CREATE TABLE IF NOT EXISTS course_completion_crit_compl (
  id INTEGER PRIMARY KEY, userid INTEGER, course INTEGER, criteriaid INTEGER, timecompleted INTEGER,
  UNIQUE (userid, criteriaid));
CREATE TABLE IF NOT EXISTS course_completions (
  id INTEGER PRIMARY KEY, userid INTEGER, course INTEGER, timeenrolled INTEGER DEFAULT 0, timestarted INTEGER DEFAULT 0,
  timecompleted INTEGER, reaggregate INTEGER DEFAULT 0, UNIQUE (userid, course));
CREATE TABLE IF NOT EXISTS cohort (
  id INTEGER PRIMARY KEY, contextid INTEGER, name TEXT, idnumber TEXT, description TEXT DEFAULT '',
  descriptionformat INTEGER DEFAULT 1, visible INTEGER DEFAULT 1, theme TEXT DEFAULT '', timecreated INTEGER,
  timemodified INTEGER);
CREATE TABLE IF NOT EXISTS cohort_members (id INTEGER PRIMARY KEY, cohortid INTEGER, userid INTEGER, timeadded INTEGER,
  UNIQUE (cohortid, userid));
CREATE TABLE IF NOT EXISTS enrol (id INTEGER PRIMARY KEY, enrol TEXT, status INTEGER, courseid INTEGER, roleid INTEGER,
  customint1 INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS role_capabilities (roleid INTEGER, capability TEXT, PRIMARY KEY (roleid, capability));
CREATE TABLE IF NOT EXISTS role_allow_assign (roleid INTEGER, allowassign INTEGER, PRIMARY KEY (roleid, allowassign));
CREATE TABLE IF NOT EXISTS grade_grades (id INTEGER PRIMARY KEY, courseid INTEGER, itemid INTEGER, userid INTEGER,
  finalgrade REAL, timemodified INTEGER);
CREATE TABLE IF NOT EXISTS welcome_messages (id INTEGER PRIMARY KEY, courseid INTEGER, userid INTEGER, enrolid INTEGER,
  sendoption INTEGER, status TEXT, timecreated INTEGER);
CREATE TABLE IF NOT EXISTS user_enrolments (
  id INTEGER PRIMARY KEY, enrolid INTEGER, userid INTEGER, status INTEGER DEFAULT 0, timestart INTEGER DEFAULT 0,
  timeend INTEGER DEFAULT 0, timecreated INTEGER, UNIQUE (enrolid, userid));
CREATE TABLE IF NOT EXISTS role_assignments (
  id INTEGER PRIMARY KEY, roleid INTEGER, contextid INTEGER, userid INTEGER, UNIQUE (roleid, contextid, userid));
CREATE INDEX IF NOT EXISTS user_email ON user (lower(email));
CREATE INDEX IF NOT EXISTS user_idnumber ON user (idnumber);
CREATE INDEX IF NOT EXISTS course_category ON course (category);
CREATE INDEX IF NOT EXISTS course_shortname ON course (shortname);
CREATE INDEX IF NOT EXISTS course_idnumber ON course (idnumber);
CREATE INDEX IF NOT EXISTS enrol_course ON enrol (courseid);
CREATE INDEX IF NOT EXISTS user_enrolments_user ON user_enrolments (userid);
CREATE INDEX IF NOT EXISTS role_assignments_user ON role_assignments (contextid, userid);
CREATE INDEX IF NOT EXISTS course_modules_course ON course_modules (course);
CREATE INDEX IF NOT EXISTS cohort_members_user ON cohort_members (userid);
CREATE INDEX IF NOT EXISTS crit_compl_user ON course_completion_crit_compl (userid, course);
"""

# (shortname, name, datatype, menu options) in the order Moodle lists them (sortorder). The first five are
# the recorded site's fields; school, county and city are what creditbridge also writes.
DEFAULT_PROFILE_FIELDS = [
    ("schoolcode", "School code", "text", ""),
    ("stage", "Teaching stage", "menu", "Early years\nPrimary\nSecondary\nUpper secondary"),
    ("subject", "Main subject", "text", ""),
    ("rural", "Rural school", "checkbox", ""),
    ("registryid", "Registry teacher id", "text", ""),
    ("school", "School", "text", ""),
    ("county", "County", "text", ""),
    ("city", "City", "text", ""),
]
DEFAULT_COURSE_FIELDS = [
    ("credit_hours", "Credit hours", "number", {"decimalplaces": 1, "minimumvalue": "0", "maximumvalue": "200"}),
    ("credit_rule", "Credit rule code", "text", {}),
    ("credit_category", "Credit category", "select",
     {"options": "Pedagogy\nSubject knowledge\nWellbeing\nLeadership"}),
    ("reportable", "Registry reportable", "checkbox", {}),
]
UNIQUE_PROFILE_FIELDS = {"registryid"}


class NotFound(LookupError):
    """A server-side operation named a user, course or module the site does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class SandboxState:
    """One site. Every public method is safe to call from the threaded server: one lock, one connection."""

    def __init__(self, path: str = ":memory:", *, admin_token: str | None = None) -> None:
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self._pending: list[dict[str, Any]] = []
        self._depth = 0
        self.clock: Callable[[], int] = lambda: int(time.time())
        self.db.executescript(SCHEMA)
        # Site files written by earlier versions: instances that send no welcome message, computed sortorders.
        if "customint1" not in {r[1] for r in self.db.execute("PRAGMA table_info(enrol)")}:
            self.db.execute("ALTER TABLE enrol ADD COLUMN customint1 INTEGER DEFAULT 0")
        enrol_columns = {r[1] for r in self.db.execute("PRAGMA table_info(enrol)")}
        for column, sqltype in ENROL_COLUMNS:  # site files of versions before enrol_self and enrol_cohort
            if column not in enrol_columns:
                self.db.execute(f"ALTER TABLE enrol ADD COLUMN {column} {sqltype}")
        if "sortorder" not in {r[1] for r in self.db.execute("PRAGMA table_info(course)")}:
            self.db.execute("ALTER TABLE course ADD COLUMN sortorder INTEGER")
        self._seq: dict[str, int] = {}
        if self.scalar("SELECT COUNT(*) FROM user") == 0:
            self._install()
        if admin_token:
            # The configured token is the one valid admin token, also when reopening a file of an earlier run.
            self.execute("DELETE FROM external_tokens WHERE userid = ? AND kind = ? AND token != ?", ADMIN_ID,
                         TOKEN_ADMIN, admin_token)
            self.set_token(admin_token, ADMIN_ID, TOKEN_ADMIN)

    # ------------------------------------------------------------ plumbing

    def now(self) -> int:
        return self.clock()

    @contextmanager
    def transaction(self) -> Iterator[SandboxState]:
        """Moodle's delegated transaction: everything or nothing; events are dispatched after commit."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.db.execute("BEGIN")
                self._pending = []
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self.db.execute("ROLLBACK")
                    self._pending = []
                raise
            self._depth -= 1
            if outer:
                self.db.execute("COMMIT")
                events, self._pending = self._pending, []
                for event in events:
                    self._dispatch(event)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Per-item work inside a call whose failures become warnings (update_users, update_courses)."""
        name = f"sp{secrets.token_hex(4)}"
        self.db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
            raise
        self.db.execute(f"RELEASE {name}")

    def next_id(self, table: str) -> int:
        with self.lock:
            if table not in self._seq:
                if table.startswith("mod_"):  # activity instance tables live only as course_modules.instance
                    start = self.scalar("SELECT COALESCE(MAX(instance), 0) FROM course_modules WHERE modname = ?",
                                        table[4:])
                else:
                    start = self.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - identifiers come from a fixed list
                self._seq[table] = int(start or 0)
            self._seq[table] += 1
            return self._seq[table]

    def skip_ids(self, table: str, count: int) -> None:
        """Use up ids as an insert later rolled back would (Moodle creates rows that the sandbox does not keep)."""
        for _ in range(count):
            self.next_id(table)

    def rows(self, sql: str, *args: Any) -> list[Row]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def row(self, sql: str, *args: Any) -> Row | None:
        found = self.rows(sql, *args)
        return found[0] if found else None

    def scalar(self, sql: str, *args: Any) -> Any:
        with self.lock:
            r = self.db.execute(sql, args).fetchone()
        return None if r is None else r[0]

    def execute(self, sql: str, *args: Any) -> None:
        with self.lock:
            self.db.execute(sql, args)

    def insert(self, table: str, values: dict[str, Any], *, with_id: bool = True) -> int:
        values = dict(values)
        if with_id and "id" not in values:
            values["id"] = self.next_id(table)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", *values.values())  # noqa: S608 - identifiers come from a fixed list
        return int(values.get("id", 0))

    def update(self, table: str, rowid: int, values: dict[str, Any]) -> None:
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            self.execute(f"UPDATE {table} SET {sets} WHERE id = ?", *values.values(), rowid)  # noqa: S608 - identifiers come from a fixed list

    def config(self, name: str, default: str = "") -> str:
        v = self.scalar("SELECT value FROM config WHERE name = ?", name)
        return default if v is None else str(v)

    def set_config(self, name: str, value: Any) -> None:
        self.execute("INSERT OR REPLACE INTO config (name, value) VALUES (?, ?)", name, str(value))

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------ install (what a fresh Moodle has)

    def _install(self) -> None:
        now = self.now()
        with self.transaction():
            self.set_config("themerev", now)
            self.insert("context", {"id": SYSTEM_CONTEXT_ID, "contextlevel": CONTEXT_SYSTEM, "instanceid": 0,
                                    "parentid": 0})
            self.insert("user", {"id": GUEST_ID, "username": "guest", "firstname": "Guest user", "lastname": " ",
                                 "email": "root@localhost", "timecreated": now, "description":
                                 "This user is a special user that allows read-only access to some courses."})
            self.insert("user", {"id": ADMIN_ID, "username": "admin", "firstname": "Admin", "lastname": "User",
                                 "email": "admin@example.invalid", "timecreated": now})
            for uid in (GUEST_ID, ADMIN_ID):
                self.context_for(CONTEXT_USER, uid)
            self.execute("INSERT INTO user_preferences (userid, name, value) VALUES (?, ?, ?)", ADMIN_ID,
                         "last_time_enrolments_synced", str(now))
            self.insert("course_categories", {"id": 1, "name": "Category 1", "idnumber": None, "parent": 0,
                                              "sortorder": 10000, "timemodified": now, "depth": 1, "path": "/1"})
            self.context_for(CONTEXT_COURSECAT, 1)
            self.insert("course", {"id": SITE_COURSE_ID, "category": 0, "fullname": "Sandbox site",
                                   "shortname": "sandbox", "format": "site", "timecreated": now,
                                   "timemodified": now, "enablecompletion": 0})
            self.context_for(CONTEXT_COURSE, SITE_COURSE_ID)
            self.insert("course_sections", {"course": SITE_COURSE_ID, "section": 1, "name": None})
            for i, (short, name, dtype, options) in enumerate(DEFAULT_PROFILE_FIELDS, 1):
                self.add_profile_field(short, name, dtype, options, sortorder=i)
            for i, (short, name, ftype, config) in enumerate(DEFAULT_COURSE_FIELDS, 1):
                self.insert("customfield_field", {"shortname": short, "name": name, "type": ftype,
                                                  "configdata": json.dumps(config), "sortorder": i})

    def add_profile_field(self, shortname: str, name: str, datatype: str, options: str = "", *,
                          sortorder: int | None = None) -> int:
        order = sortorder or int(self.scalar("SELECT COALESCE(MAX(sortorder), 0) + 1 FROM user_info_field"))
        return self.insert("user_info_field", {"shortname": shortname, "name": name, "datatype": datatype,
                                               "param1": options, "forceunique": int(shortname in
                                                                                    UNIQUE_PROFILE_FIELDS),
                                               "sortorder": order})

    def remove_profile_field(self, shortname: str) -> bool:
        """profile_delete_field(): the field and every user's value for it."""
        fid = self.scalar("SELECT id FROM user_info_field WHERE shortname = ?", shortname)
        if fid is None:
            return False
        with self.transaction():
            self.execute("DELETE FROM user_info_data WHERE fieldid = ?", fid)
            self.execute("DELETE FROM user_info_field WHERE id = ?", fid)
        return True

    def add_course_field(self, shortname: str, name: str, ftype: str = "text",
                         config: dict[str, Any] | None = None) -> int:
        order = int(self.scalar("SELECT COALESCE(MAX(sortorder), 0) + 1 FROM customfield_field"))
        return self.insert("customfield_field", {"shortname": shortname, "name": name, "type": ftype,
                                                 "configdata": json.dumps(config or {}), "sortorder": order})

    def remove_course_field(self, shortname: str) -> bool:
        fid = self.scalar("SELECT id FROM customfield_field WHERE shortname = ?", shortname)
        if fid is None:
            return False
        with self.transaction():
            self.execute("DELETE FROM customfield_data WHERE fieldid = ?", fid)
            self.execute("DELETE FROM customfield_field WHERE id = ?", fid)
        return True

    def profile_field_names(self) -> list[str]:
        return [r["shortname"] for r in self.rows("SELECT shortname FROM user_info_field ORDER BY sortorder, id")]

    def course_field_names(self) -> list[str]:
        return [r["shortname"] for r in self.rows("SELECT shortname FROM customfield_field ORDER BY sortorder, id")]

    # ------------------------------------------------------------ roles and capabilities

    def setup_role_user(self, username: str, capabilities: list[str] | tuple[str, ...], *,
                        token: str | None = None, assignable: tuple[int, ...] = (STUDENT_ROLE,)) -> int:
        """A user holding the system role `creditbridge` with exactly these capabilities, as an administrator
        makes one on Site administration > Users > Permissions > Define roles; its token, when given."""
        user = self.user_by_username(username)
        uid = user["id"] if user else self.create_user(username, firstname="Creditbridge", lastname="Service")
        with self.transaction():
            self.execute("DELETE FROM role_capabilities WHERE roleid = ?", CREDITBRIDGE_ROLE)
            self.execute("DELETE FROM role_allow_assign WHERE roleid = ?", CREDITBRIDGE_ROLE)
            for cap in capabilities:
                self.set_capability(cap, True)
            for roleid in assignable:
                self.execute("INSERT OR IGNORE INTO role_allow_assign (roleid, allowassign) VALUES (?, ?)",
                             CREDITBRIDGE_ROLE, roleid)
            if not self.scalar("SELECT 1 FROM role_assignments WHERE roleid = ? AND contextid = ? AND userid = ?",
                               CREDITBRIDGE_ROLE, SYSTEM_CONTEXT_ID, uid):
                self.insert("role_assignments", {"roleid": CREDITBRIDGE_ROLE, "contextid": SYSTEM_CONTEXT_ID,
                                                 "userid": uid})
        if token:
            self.execute("DELETE FROM external_tokens WHERE userid = ? AND token != ?", uid, token)
            self.set_token(token, uid, TOKEN_USER)
        return uid

    def set_capability(self, capability: str, allowed: bool, roleid: int = CREDITBRIDGE_ROLE) -> None:
        """assign_capability(CAP_ALLOW) / unassign_capability() on a role in the system context."""
        if allowed:
            self.execute("INSERT OR IGNORE INTO role_capabilities (roleid, capability) VALUES (?, ?)", roleid,
                         capability)
        else:
            self.execute("DELETE FROM role_capabilities WHERE roleid = ? AND capability = ?", roleid, capability)

    def system_roles(self, userid: int) -> list[int]:
        return [r["roleid"] for r in self.rows("SELECT roleid FROM role_assignments WHERE contextid = ? AND userid = ?",
                                               SYSTEM_CONTEXT_ID, userid)]

    def capabilities_of(self, userid: int) -> set[str]:
        """What the user's system roles allow (a site administrator is not asked: admins may do everything)."""
        return {r["capability"] for r in self.rows(
            "SELECT capability FROM role_capabilities WHERE roleid IN (SELECT roleid FROM role_assignments "
            "WHERE contextid = ? AND userid = ?)", SYSTEM_CONTEXT_ID, userid)}

    def assignable_roles(self, userid: int) -> set[int]:
        return {r["allowassign"] for r in self.rows(
            "SELECT allowassign FROM role_allow_assign WHERE roleid IN (SELECT roleid FROM role_assignments "
            "WHERE contextid = ? AND userid = ?)", SYSTEM_CONTEXT_ID, userid)}

    # ------------------------------------------------------------ site settings the sandbox models

    def welcome_default(self) -> int:
        return int(self.config("enrol_manual_sendcoursewelcomemessage", str(WELCOME_DEFAULT)))

    def set_welcome_default(self, sendoption: int) -> None:
        """enrol_manual's sendcoursewelcomemessage: what a new manual instance gets as its customint1."""
        self.set_config("enrol_manual_sendcoursewelcomemessage", sendoption)

    def set_welcome_instances(self, sendoption: int, courseid: int | None = None) -> int:
        """customint1 of the existing manual instances (one course's, or all). Returns how many changed."""
        where, args = ("enrol = 'manual'", ()) if courseid is None else ("enrol = 'manual' AND courseid = ?",
                                                                          (courseid,))
        n = int(self.scalar(f"SELECT COUNT(*) FROM enrol WHERE {where} AND customint1 != ?", *args, sendoption))  # noqa: S608 - fixed fragments
        self.execute(f"UPDATE enrol SET customint1 = ? WHERE {where}", sendoption, *args)  # noqa: S608 - fixed fragments
        return n

    def welcome_instances_sending(self) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM enrol WHERE enrol = 'manual' AND customint1 != 0"))

    def welcome_messages(self) -> list[Row]:
        return self.rows("SELECT * FROM welcome_messages ORDER BY id")

    def outside_service(self) -> set[str]:
        """Functions an administrator took out of (or never added to) the token's external service."""
        return {n for n in self.config("sandbox_service_removed").split(",") if n}

    def set_in_service(self, function: str, present: bool) -> None:
        removed = self.outside_service() - {function} | (set() if present else {function})
        self.set_config("sandbox_service_removed", ",".join(sorted(removed)))

    def flag(self, name: str) -> bool:
        return self.config(name, "0") == "1"

    def set_flag(self, name: str, on: bool) -> None:
        self.set_config(name, "1" if on else "0")

    def context_for(self, level: int, instanceid: int, parentid: int = SYSTEM_CONTEXT_ID) -> int:
        found = self.scalar("SELECT id FROM context WHERE contextlevel = ? AND instanceid = ?", level, instanceid)
        if found:
            return int(found)
        return self.insert("context", {"contextlevel": level, "instanceid": instanceid, "parentid": parentid})

    def context(self, contextid: int) -> Row | None:
        return self.row("SELECT * FROM context WHERE id = ?", contextid)

    # ------------------------------------------------------------ tokens

    def set_token(self, token: str, userid: int, kind: str = TOKEN_ADMIN) -> str:
        self.execute("INSERT OR REPLACE INTO external_tokens (token, userid, kind, timecreated) VALUES (?, ?, ?, ?)",
                     token, userid, kind, self.now())
        return token

    def mint_token(self, userid: int, kind: str | None = None) -> str:
        """A permanent token for a user (Site administration > Manage tokens). Admins get admin tokens."""
        if self.get_user(userid) is None:
            raise NotFound(f"no user {userid}")
        return self.set_token(secrets.token_hex(16), userid, kind or (TOKEN_ADMIN if userid == ADMIN_ID
                                                                     else TOKEN_USER))

    def token(self, token: str) -> Row | None:
        return self.row("SELECT * FROM external_tokens WHERE token = ?", token)

    # ------------------------------------------------------------ lookups for webhook_sender and admin

    def get_user(self, userid: int) -> Row | None:
        u = self.row("SELECT id, username, idnumber, firstname, lastname, email, suspended, deleted FROM user "
                     "WHERE id = ?", int(userid))
        return u

    def get_course(self, courseid: int) -> Row | None:
        return self.row("SELECT id, idnumber, shortname, fullname, category, enablecompletion FROM course WHERE id = ?",
                        int(courseid))

    def get_course_module(self, cmid: int) -> Row | None:
        cm = self.row("SELECT id, course, modname, instance, idnumber, name, completion FROM course_modules "
                      "WHERE id = ?", int(cmid))
        if cm is not None:
            cm["cmid"] = cm["id"]
        return cm

    def user_by_username(self, username: str) -> Row | None:
        return self.row("SELECT * FROM user WHERE username = ? AND deleted = 0", username)

    # ------------------------------------------------------------ events

    def add_completion_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event; listeners hear it when the transaction commits (never for a rolled-back change)."""
        if self._depth:
            self._pending.append(event)
        else:
            self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        for fn in list(self.listeners):
            fn(dict(event))

    # ------------------------------------------------------------ courses, modules, enrolment (server side)

    def course_context(self, courseid: int) -> int:
        course = self.row("SELECT category FROM course WHERE id = ?", courseid)
        parent = SYSTEM_CONTEXT_ID
        if course and course["category"]:
            parent = self.context_for(CONTEXT_COURSECAT, course["category"])
        return self.context_for(CONTEXT_COURSE, courseid, parent)

    def add_course_module(self, courseid: int, modname: str, name: str, idnumber: str = "", *,
                          completion: int = 1, instance: int | None = None) -> int:
        """What adding an activity in the course editor does. completion: 0 none, 1 manual, 2 automatic."""
        if self.get_course(courseid) is None:
            raise NotFound(f"no course {courseid}")
        with self.transaction():
            section = self.scalar("SELECT id FROM course_sections WHERE course = ? AND section = 0", courseid)
            if instance is None:
                instance = self.next_id(f"mod_{modname}")
            cmid = self.insert("course_modules", {"course": courseid, "modname": modname, "instance": instance,
                                                  "section": section, "idnumber": idnumber, "name": name,
                                                  "completion": completion, "added": self.now()})
            self.context_for(CONTEXT_MODULE, cmid, self.course_context(courseid))
        return cmid

    def delete_enrol_instance(self, courseid: int, enrol: str = "manual") -> None:
        with self.transaction():
            for inst in self.rows("SELECT id FROM enrol WHERE courseid = ? AND enrol = ?", courseid, enrol):
                self.execute("DELETE FROM user_enrolments WHERE enrolid = ?", inst["id"])
                self.execute("DELETE FROM enrol WHERE id = ?", inst["id"])

    def manual_instance(self, courseid: int) -> Row | None:
        return self.row("SELECT * FROM enrol WHERE courseid = ? AND enrol = 'manual' AND status = 0", courseid)

    def enrol_user(self, courseid: int, userid: int, roleid: int = STUDENT_ROLE, timestart: int = 0,
                   timeend: int = 0, status: int = 0) -> bool:
        """enrol_plugin::enrol_user() of the manual instance. True when a new enrolment was made (only then does
        Moodle dispatch after_user_enrolled, whose enrol_manual callback sends the course welcome message)."""
        inst = self.manual_instance(courseid)
        if inst is None:
            raise NotFound(f"course {courseid} has no manual enrolment instance")
        return self.enrol_into(inst, userid, roleid, timestart, timeend, status)

    # ------------------------------------------------------------ enrol_self and enrol_cohort

    def enrol_plugin_enabled(self, plugin: str) -> bool:
        """$CFG->enrol_plugins_enabled (Site administration > Plugins > Enrolments > Manage enrol plugins)."""
        return plugin in self.config("enrol_plugins_enabled", ENROL_PLUGINS_DEFAULT).split(",")

    def set_enrol_plugin(self, plugin: str, enabled: bool) -> None:
        current = self.config("enrol_plugins_enabled", ENROL_PLUGINS_DEFAULT).split(",")
        plugins = [p for p in current if p and p != plugin]
        self.set_config("enrol_plugins_enabled", ",".join([*plugins, plugin] if enabled else plugins))

    def self_enrol_status(self, inst: Row, userid: int) -> str | None:
        """enrol_self_plugin::can_self_enrol() for `userid`: None when they may enrol, else Moodle's reason."""
        now = self.now()
        if not self.enrol_plugin_enabled("self") or inst["status"] != 0:
            return "You cannot enrol yourself in this course."
        if inst.get("enrolstartdate") and inst["enrolstartdate"] > now:
            return "You cannot enrol yourself in this course yet."
        if inst.get("enrolenddate") and inst["enrolenddate"] < now:
            return "Enrolment has ended."
        if not inst.get("customint6"):
            return "You cannot enrol yourself in this course."  # new enrolments not allowed
        if self.scalar("SELECT 1 FROM user_enrolments WHERE enrolid = ? AND userid = ?", inst["id"], userid):
            return "You cannot enrol yourself in this course."  # already enrolled by this instance
        if inst.get("customint5") and not self.scalar("SELECT 1 FROM cohort_members WHERE cohortid = ? AND userid = ?",
                                                      inst["customint5"], userid):
            name = self.scalar("SELECT name FROM cohort WHERE id = ?", inst["customint5"]) or ""
            return f"Only members of cohort '{name}' can self-enrol."
        return None

    def self_enrol(self, courseid: int, userid: int) -> Row:
        """The teacher clicks "Enrol me" on the course's enrolment page: the first self instance that lets
        them in enrols them (enrol_self_plugin::enrol_self). Raises NotFound with the reason otherwise."""
        if self.get_user(userid) is None:
            raise NotFound(f"no user {userid}")
        instances = self.rows("SELECT * FROM enrol WHERE courseid = ? AND enrol = 'self' ORDER BY id", courseid)
        reasons = []
        with self.transaction():
            for inst in instances:
                reason = self.self_enrol_status(inst, userid)
                if reason is None:
                    self.enrol_into(inst, userid, inst["roleid"] or STUDENT_ROLE, self.now())
                    return inst
                if inst["status"] == 0:  # the enrolment page shows enabled instances only
                    reasons.append(reason)
        raise NotFound(reasons[0] if reasons else f"course {courseid} has no self enrolment")

    def self_enrol_options(self, userid: int) -> list[int]:
        """The courses whose enrolment page would let the user click "Enrol me" (course id order)."""
        out: list[int] = []
        for inst in self.rows("SELECT * FROM enrol WHERE enrol = 'self' ORDER BY courseid, id"):
            if (not out or out[-1] != inst["courseid"]) and self.self_enrol_status(inst, userid) is None:
                out.append(inst["courseid"])
        return out

    def add_cohort_sync(self, courseid: int, cohortid: int, roleid: int = STUDENT_ROLE) -> int:
        """enrol_cohort: an instance enrolling every member of the cohort (customint1), now and as they join
        (an administrator adds it on the course's Enrolment methods page; no web service can)."""
        if self.get_course(courseid) is None:
            raise NotFound(f"no course {courseid}")
        if self.row("SELECT id FROM cohort WHERE id = ?", cohortid) is None:
            raise NotFound(f"no cohort {cohortid}")
        with self.transaction():
            instid = self.insert("enrol", {"enrol": "cohort", "status": 0, "courseid": courseid, "roleid": roleid,
                                           "customint1": cohortid})
            for m in self.rows("SELECT userid FROM cohort_members WHERE cohortid = ?", cohortid):
                self.cohort_member_added(cohortid, m["userid"])
        return instid

    def cohort_member_added(self, cohortid: int, userid: int) -> None:
        """enrol_cohort's observer of \\core\\event\\cohort_member_added: enrolled by every enabled instance."""
        if not self.enrol_plugin_enabled("cohort"):
            return
        for inst in self.rows("SELECT * FROM enrol WHERE enrol = 'cohort' AND status = 0 AND customint1 = ?",
                              cohortid):
            self.enrol_into(inst, userid, inst["roleid"] or STUDENT_ROLE)

    def cohort_member_removed(self, cohortid: int, userid: int) -> None:
        """enrol_cohort's observer of cohort_member_removed, with its default unenrolaction (unenrol): the
        enrolment goes; course completion data stays in Moodle's tables."""
        for inst in self.rows("SELECT * FROM enrol WHERE enrol = 'cohort' AND customint1 = ?", cohortid):
            self.execute("DELETE FROM user_enrolments WHERE enrolid = ? AND userid = ?", inst["id"], userid)
            if not self.is_enrolled(inst["courseid"], userid):
                self.execute("DELETE FROM role_assignments WHERE contextid = ? AND userid = ?",
                             self.course_context(inst["courseid"]), userid)

    def enrol_into(self, inst: Row, userid: int, roleid: int = STUDENT_ROLE, timestart: int = 0,
                   timeend: int = 0, status: int = 0) -> bool:
        """enrol_plugin::enrol_user() into one instance; the course welcome message as its plugin says
        (enrol_manual: customint1, enrol_self: customint4)."""
        courseid = inst["courseid"]
        now = self.now()
        ue = self.row("SELECT * FROM user_enrolments WHERE enrolid = ? AND userid = ?", inst["id"], userid)
        if ue is None:
            self.insert("user_enrolments", {"enrolid": inst["id"], "userid": userid, "status": status,
                                            "timestart": timestart, "timeend": timeend, "timecreated": now})
        else:
            self.update("user_enrolments", ue["id"], {"status": status, "timestart": timestart, "timeend": timeend})
        ctx = self.course_context(courseid)
        if roleid:
            self.execute("INSERT OR IGNORE INTO role_assignments (id, roleid, contextid, userid) VALUES (?, ?, ?, ?)",
                         self.next_id("role_assignments"), roleid, ctx, userid)
        sendoption = inst.get("customint4") if inst["enrol"] == "self" else inst.get("customint1")
        if inst["enrol"] == "cohort":
            sendoption = 0  # enrol_cohort sends no welcome message
        if ue is None and sendoption:
            self.insert("welcome_messages", {"courseid": courseid, "userid": userid, "enrolid": inst["id"],
                                             "sendoption": sendoption, "timecreated": now,
                                             "status": "failed" if self.flag("sandbox_mail_fails") else "sent"})
        return ue is None

    def is_enrolled(self, courseid: int, userid: int, *, active: bool = False) -> bool:
        for ue in self.rows("SELECT ue.*, e.status AS estatus FROM user_enrolments ue "
                            "JOIN enrol e ON e.id = ue.enrolid "
                            "WHERE e.courseid = ? AND ue.userid = ?", courseid, userid):
            if not active or self.enrolment_active(ue):
                return True
        return False

    def enrolment_active(self, ue: Row) -> bool:
        now = self.now()
        return (ue["status"] == 0 and ue.get("estatus", 0) == 0 and (not ue["timestart"] or ue["timestart"] <= now)
                and (not ue["timeend"] or ue["timeend"] > now))

    def roles_in_course(self, courseid: int, userid: int) -> list[int]:
        ctx = self.course_context(courseid)
        return [r["roleid"] for r in self.rows("SELECT roleid FROM role_assignments WHERE contextid = ? AND userid = ? "
                                               "ORDER BY id", ctx, userid)]

    def is_tracked_user(self, courseid: int, userid: int) -> bool:
        """completion_info::is_tracked_user(): actively enrolled and holding the student archetype's
        moodle/course:isincompletionreports."""
        return (self.is_enrolled(courseid, userid, active=True)
                and STUDENT_ROLE in self.roles_in_course(courseid, userid))

    # ------------------------------------------------------------ completion (server side)

    def set_completion_criteria(self, courseid: int, *, self_completion: bool = False,
                                activities: list[int] | tuple[int, ...] = (), aggregation: int = 1) -> None:
        """Course completion settings: criteria type 1 = self, 4 = activity; aggregation 1 = ALL, 2 = ANY."""
        with self.transaction():
            self.execute("DELETE FROM course_completion_criteria WHERE course = ?", courseid)
            self.execute("INSERT OR REPLACE INTO course_completion_aggr_methd (course, method) VALUES (?, ?)",
                         courseid, aggregation)
            if self_completion:
                self.insert("course_completion_criteria", {"course": courseid, "criteriatype": 1,
                                                           "moduleinstance": None})
            for cmid in activities:
                if self.get_course_module(cmid) is None:
                    raise NotFound(f"no course module {cmid}")
                self.insert("course_completion_criteria", {"course": courseid, "criteriatype": 4,
                                                           "moduleinstance": cmid})

    def criteria(self, courseid: int) -> list[Row]:
        return self.rows("SELECT * FROM course_completion_criteria WHERE course = ? ORDER BY criteriatype, id",
                         courseid)

    def _course_completion_row(self, courseid: int, userid: int) -> Row:
        row = self.row("SELECT * FROM course_completions WHERE course = ? AND userid = ?", courseid, userid)
        if row is None:
            self.insert("course_completions", {"userid": userid, "course": courseid, "timeenrolled": 0,
                                               "timestarted": self.now(), "timecompleted": None})
            row = self.row("SELECT * FROM course_completions WHERE course = ? AND userid = ?", courseid, userid)
        assert row is not None
        return row

    def mark_criterion(self, criterion: Row, userid: int, when: int | None = None) -> None:
        self._course_completion_row(criterion["course"], userid)
        self.execute("INSERT OR IGNORE INTO course_completion_crit_compl "
                     "(id, userid, course, criteriaid, timecompleted) VALUES (?, ?, ?, ?, ?)",
                     self.next_id("course_completion_crit_compl"), userid, criterion["course"], criterion["id"],
                     when or self.now())

    def set_activity_completion(self, cmid: int, userid: int, state: int, *, actor: int | None = None,
                                overrideby: int | None = None, when: int | None = None) -> Row:
        """completion_info::update_state / internal_set_data: store, fire course_module_completion_updated,
        and record the activity criterion as Moodle's completion observer does."""
        cm = self.get_course_module(cmid)
        if cm is None:
            raise NotFound(f"no course module {cmid}")
        now = when or self.now()
        with self.transaction():
            row = self.row("SELECT * FROM course_modules_completion WHERE coursemoduleid = ? AND userid = ?",
                           cmid, userid)
            if row is None:
                rid = self.insert("course_modules_completion", {"coursemoduleid": cmid, "userid": userid,
                                                                "completionstate": state, "overrideby": overrideby,
                                                                "timemodified": now})
            else:
                rid = row["id"]
                self.update("course_modules_completion", rid, {"completionstate": state, "overrideby": overrideby,
                                                               "timemodified": now})
            for crit in self.rows("SELECT * FROM course_completion_criteria WHERE course = ? AND criteriatype = 4 "
                                  "AND moduleinstance = ?", cm["course"], cmid):
                if state in (1, 2):
                    self.mark_criterion(crit, userid, now)
                else:
                    self.execute("DELETE FROM course_completion_crit_compl WHERE userid = ? AND criteriaid = ?",
                                 userid, crit["id"])
            self.emit({"eventname": "\\core\\event\\course_module_completion_updated", "component": "core",
                       "objectid": rid, "userid": actor if actor is not None else userid, "relateduserid": userid,
                       "courseid": cm["course"], "contextinstanceid": cmid, "timecreated": now,
                       "other": {"relateduserid": userid, "overrideby": overrideby, "completionstate": state}})
        found = self.row("SELECT * FROM course_modules_completion WHERE id = ?", rid)
        assert found is not None
        return found

    def grade_activity(self, cmid: int, userid: int, grade: float, *, grademax: float = 100.0) -> None:
        """A grade for the activity: \\core\\event\\user_graded (the grade travels in the event dict), raised
        twice as on the real site: for the item and for the course total that regrading updates. Both are in
        the course context (user_graded::create_from_grade), so the two differ only in objectid and itemid."""
        cm = self.get_course_module(cmid)
        if cm is None:
            raise NotFound(f"no course module {cmid}")
        now = self.now()
        with self.transaction():
            for itemid in (cmid, 0):  # 0: the course total item
                gid = self.insert("grade_grades", {"courseid": cm["course"], "itemid": itemid, "userid": userid,
                                                   "finalgrade": grade, "timemodified": now})
                self.emit({"eventname": "\\core\\event\\user_graded", "component": "core",
                           "objectid": gid, "userid": ADMIN_ID, "relateduserid": userid,
                           "courseid": cm["course"], "contextinstanceid": cm["course"], "timecreated": now,
                           "grade": grade, "grademax": grademax, "other": {"itemid": itemid, "overridden": False,
                                                                           "finalgrade": grade}})

    def complete_course(self, courseid: int, userid: int, *, when: int | None = None, actor: int = ADMIN_ID) -> Row:
        """Mark the course complete for the user (completion_completion::mark_complete) and fire course_completed."""
        if self.get_course(courseid) is None:
            raise NotFound(f"no course {courseid}")
        now = self.now()
        with self.transaction():
            row = self._course_completion_row(courseid, userid)
            if row["timecompleted"]:
                return row
            self.execute("UPDATE course_completions SET timecompleted = ?, reaggregate = 0 WHERE id = ?",
                         when or now, row["id"])
            self.emit({"eventname": "\\core\\event\\course_completed", "component": "core", "objectid": row["id"],
                       "userid": actor, "relateduserid": userid, "courseid": courseid, "contextinstanceid": courseid,
                       "timecreated": now, "other": {"relateduserid": userid}})
        done = self.row("SELECT * FROM course_completions WHERE id = ?", row["id"])
        assert done is not None
        return done

    def run_completion_cron(self) -> list[tuple[int, int]]:
        """\\core\\task\\completion_regular_task: aggregate criteria, mark courses complete. Returns (user, course)."""
        done: list[tuple[int, int]] = []
        for cc in self.rows("SELECT * FROM course_completions WHERE timecompleted IS NULL ORDER BY id"):
            crits = self.criteria(cc["course"])
            if not crits:
                continue
            method = self.scalar("SELECT method FROM course_completion_aggr_methd WHERE course = ?", cc["course"]) or 1
            times = {r["criteriaid"]: r["timecompleted"] for r in self.rows(
                "SELECT * FROM course_completion_crit_compl WHERE userid = ? AND course = ?", cc["userid"],
                cc["course"])}
            met = [times.get(c["id"]) for c in crits]
            complete = all(met) if method == 1 else any(met)
            if complete:
                self.complete_course(cc["course"], cc["userid"], when=max(t for t in met if t))
                done.append((cc["userid"], cc["course"]))
        return done

    # ------------------------------------------------------------ users (admin helpers)

    def create_user(self, username: str, *, firstname: str = "Sandbox", lastname: str = "User",
                    email: str | None = None, **extra: Any) -> int:
        """A user created server-side (no web-service validation); used for token owners in tests and setup."""
        now = self.now()
        with self.transaction():
            uid = self.insert("user", {"username": username, "firstname": firstname, "lastname": lastname,
                                       "email": email or f"{username}@example.invalid", "timecreated": now,
                                       "timemodified": now, **extra})
            self.context_for(CONTEXT_USER, uid)
        return uid

    def private_key(self, userid: int) -> str:
        """A stable per-user key like Moodle's userprivateaccesskey (not a credential of the sandbox)."""
        return hashlib.md5(f"{self.path}|{userid}|privatekey".encode(), usedforsecurity=False).hexdigest()
