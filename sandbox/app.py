"""The sandbox LMS as a Flask app: Moodle's REST endpoint plus a few admin endpoints for what Moodle does
server-side (activities, completion criteria, completions, the completion cron, tokens)."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from creditbridge.connector.functions import REQUIRED_CAPABILITIES
from creditbridge.sandbox import cost, errors, webhook_sender
from creditbridge.sandbox import ws_cohorts as _ws_cohorts  # noqa: F401 - registers its functions
from creditbridge.sandbox import ws_completion as _ws_completion  # noqa: F401
from creditbridge.sandbox import ws_courses as _ws_courses  # noqa: F401
from creditbridge.sandbox import ws_enrol as _ws_enrol  # noqa: F401
from creditbridge.sandbox import ws_enrolpolicy as _ws_enrolpolicy  # noqa: F401
from creditbridge.sandbox import ws_readiness as _ws_readiness  # noqa: F401
from creditbridge.sandbox import ws_site as _ws_site  # noqa: F401
from creditbridge.sandbox import ws_users as _ws_users  # noqa: F401
from creditbridge.sandbox.errors import WsException
from creditbridge.sandbox.functions import FUNCTIONS, KNOWN_OUTSIDE_SERVICE, Call
from creditbridge.sandbox.state import ADMIN_ID, TOKEN_ADMIN, TOKEN_NOREST, WELCOME_DEFAULT, NotFound, SandboxState
from creditbridge.sandbox.wsformat import MAX_INPUT_VARS, php_decode, to_json, validate, xml_exception, xml_response

log = logging.getLogger(__name__)
bp = Blueprint("sandbox", __name__)

WS_KEYS = {"wstoken", "wsfunction", "moodlewsrestformat"}
COMMON_HEADERS = {"Cache-Control": "private, must-revalidate, pre-check=0, post-check=0, max-age=0",
                  "Expires": "Thu, 01 Jan 1970 00:00:00 GMT", "Pragma": "no-cache", "Accept-Ranges": "none",
                  "Access-Control-Allow-Origin": "*"}
DEFAULTS: dict[str, Any] = {"SANDBOX_DB": ":memory:", "SANDBOX_DEBUG": False, "SANDBOX_WEBHOOK_URL": None,
                            "SANDBOX_WEBHOOK_SECRET": None, "SANDBOX_WWWROOT": None,
                            "SANDBOX_SITENAME": "creditbridge sandbox", "SANDBOX_ROLE": "admin",
                            "SANDBOX_COST": "none", "SANDBOX_WORKERS": None}
# SANDBOX_COST: "real" makes every web-service call take the time a real Moodle 4.5 took (sandbox/cost.py).
# SANDBOX_WORKERS: how many web-service requests are served at once, like a site's PHP processes (more wait
# in a queue); None: no limit (the fast default of tests).
# SANDBOX_ROLE: whose token SANDBOX_TOKEN is. "admin": the site administrator's (may do everything, the
# quickstart's default); "docs": a user `creditbridge` holding exactly the role docs/moodle.md describes.
ROLES = ("admin", "docs")
ROLE_USERNAME = "creditbridge"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    if not app.config.get("SANDBOX_TOKEN"):
        raise errors.CreditbridgeError("SANDBOX_TOKEN is required (the admin's web-service token)")
    role = app.config.get("SANDBOX_ROLE") or "admin"
    if role not in ROLES:
        raise errors.CreditbridgeError(f"SANDBOX_ROLE must be one of {', '.join(ROLES)}, got {role!r}")
    state = SandboxState(app.config["SANDBOX_DB"] or ":memory:",
                         admin_token=app.config["SANDBOX_TOKEN"] if role == "admin" else None)
    if role == "docs":
        state.setup_role_user(ROLE_USERNAME, list(REQUIRED_CAPABILITIES), token=app.config["SANDBOX_TOKEN"])
    if app.config.get("SANDBOX_WEBHOOK_URL"):
        state.set_config("local_creditbridge_endpoint", app.config["SANDBOX_WEBHOOK_URL"])
    app.extensions["sandbox_state"] = state
    if app.config["SANDBOX_COST"] not in cost.COSTS:
        raise errors.CreditbridgeError(f"SANDBOX_COST must be one of {', '.join(cost.COSTS)}, "
                                       f"got {app.config['SANDBOX_COST']!r}")
    workers = app.config.get("SANDBOX_WORKERS")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise errors.CreditbridgeError(f"SANDBOX_WORKERS must be a whole number of at least 1, got {workers!r}")
    app.extensions["sandbox_workers"] = threading.BoundedSemaphore(workers) if workers else None
    app.extensions["sandbox_outage"] = Outage()
    app.register_blueprint(bp)
    if app.config.get("SANDBOX_WEBHOOK_URL"):
        if not app.config.get("SANDBOX_WEBHOOK_SECRET"):
            raise errors.CreditbridgeError("SANDBOX_WEBHOOK_SECRET is required with SANDBOX_WEBHOOK_URL")
        webhook_sender.install(app, state)
    return app


def state_of(app: Flask) -> SandboxState:
    return app.extensions["sandbox_state"]


def _wwwroot() -> str:
    return (current_app.config.get("SANDBOX_WWWROOT") or request.host_url).rstrip("/")


# ------------------------------------------------------------------ REST server

def _form_pairs() -> list[tuple[str, str]]:
    """The POST variables PHP hands to Moodle: it keeps max_input_vars + 1 of them (the check runs after the
    variable is stored) and drops the rest silently."""
    if request.mimetype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(request.get_data(as_text=True), keep_blank_values=True)
    else:
        pairs = list(request.form.items(multi=True))
    return pairs[:MAX_INPUT_VARS + 1]


def _respond(body: str, xml: bool) -> Response:
    if xml:
        headers = {"Content-Type": "application/xml; charset=utf-8",
                   "Content-Disposition": 'inline; filename="response.xml"'}
    else:
        headers = {"Content-Type": "application/json"}
    return Response(body, status=200, headers={**headers, **COMMON_HEADERS})


class Outage:
    """The site answering HTTP 503 (maintenance, an overloaded proxy) for `calls` web-service requests once
    `after` more have been served: tests start an outage mid-apply with /sandbox/admin/outage."""

    RETRY_AFTER = "1"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.after = 0
        self.calls = 0

    def set(self, after: int, calls: int) -> None:
        with self.lock:
            self.after, self.calls = after, calls

    def refuse(self) -> bool:
        with self.lock:
            if self.calls <= 0:
                return False
            if self.after > 0:
                self.after -= 1
                return False
            self.calls -= 1
            return True


@bp.route("/webservice/rest/server.php", methods=["GET", "POST"])
def rest_server() -> Response:
    workers = current_app.extensions["sandbox_workers"]
    if workers is None:
        return _serve_call()
    # One request per worker, like one per PHP process; the rest wait here as they would in php-fpm's queue.
    with workers:
        return _serve_call()


def _serve_call() -> Response:
    if current_app.extensions["sandbox_outage"].refuse():
        return Response("Service Unavailable", status=503,
                        headers={"Retry-After": Outage.RETRY_AFTER, "Content-Type": "text/plain"})
    started = time.monotonic()
    query = list(request.args.items(multi=True))[:MAX_INPUT_VARS]
    post = _form_pairs() if request.method == "POST" else []
    merged = {**php_decode(query), **php_decode(post)}  # array_merge($_GET, $_POST)
    xml = merged.get("moodlewsrestformat") != "json"
    debug = bool(current_app.config.get("SANDBOX_DEBUG"))
    state = state_of(current_app)
    try:
        with state.lock:
            function, result = _run(state, merged, debug)
    except WsException as e:
        envelope = e.envelope(debug)
        _charge(merged, started)
        return _respond(xml_exception(envelope) if xml else to_json(envelope), xml)
    _charge(merged, started)
    if xml:
        return _respond(xml_response(result, function.returns, returns_nothing=function.returns_nothing), xml)
    return _respond(to_json(result), xml)


def _charge(merged: dict[str, Any], started: float) -> None:
    """With --cost real, answer no sooner than the real site would have. The state change is made (under the
    state's lock, so concurrent requests stay consistent) before the wait, which runs outside that lock: N
    workers wait in parallel as N PHP processes would work in parallel."""
    if current_app.config.get("SANDBOX_COST") != "real":
        return
    function = merged.get("wsfunction")
    seconds = cost.call_seconds(function if isinstance(function, str) else "", merged)
    left = seconds - (time.monotonic() - started)
    if left > 0:
        time.sleep(left)


def _run(state: SandboxState, merged: dict[str, Any], debug: bool) -> tuple[Any, Any]:
    token = merged.get("wstoken")
    found = state.token(token) if isinstance(token, str) and token else None
    if found is None:
        raise errors.invalid_token()
    user = state.row("SELECT * FROM user WHERE id = ?", found["userid"])
    if user is None or user["deleted"]:
        raise errors.invalid_token()
    if user["suspended"]:
        raise WsException("core\\exception\\moodle_exception", "wsaccessusersuspended",
                          f"Refused web service access for suspended username: {user['username']}")
    # A user whose system role lacks webservice/rest:use is refused like the token kind made for that case.
    if found["kind"] == TOKEN_NOREST or (found["kind"] != TOKEN_ADMIN and state.system_roles(user["id"]) and
                                         "webservice/rest:use" not in state.capabilities_of(user["id"])):
        raise errors.access_exception("You are not allowed to use the rest protocol (missing capability: "
                                      "webservice/rest:use)")
    name = merged.get("wsfunction")
    if not isinstance(name, str) or not name:
        raise errors.InvalidParameter("Missing function name")
    function = FUNCTIONS.get(name)
    if function is None or name in state.outside_service():
        if name in KNOWN_OUTSIDE_SERVICE or name in FUNCTIONS:
            raise errors.access_exception(errors.ACCESS_DEBUG_FUNCTION.format(name=name))
        raise WsException("dml_missing_record_exception", "invalidrecord",
                          "Can't find data record in database table external_functions.",
                          f"SELECT * FROM {{external_functions}} WHERE name = ?\n[array (\n  0 => '{name}',\n)]")  # noqa: S608 - debuginfo text, not a query
    params = {k: v for k, v in merged.items() if k not in WS_KEYS}
    call = Call(state, user["id"], found["kind"], _wwwroot(), debug,
                sitename=current_app.config.get("SANDBOX_SITENAME") or "creditbridge sandbox")
    validated = validate(function.params, params)
    return function, function.handler(call, validated)


# ------------------------------------------------------------------ admin endpoints

class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _admin() -> SandboxState:
    auth = request.headers.get("Authorization", "")
    given = {request.values.get("wstoken"), request.values.get("token"), auth.removeprefix("Bearer ").strip()}
    if current_app.config["SANDBOX_TOKEN"] not in given:
        raise AdminError(403, "invalid admin token")
    return state_of(current_app)


def _int(name: str, default: int | None = None) -> int:
    raw = request.values.get(name)
    if raw in (None, ""):
        if default is None:
            raise AdminError(400, f"missing field: {name}")
        return default
    try:
        return int(raw)
    except ValueError:
        raise AdminError(400, f"field {name} must be an integer, got {raw!r}") from None


@bp.errorhandler(AdminError)
def _admin_error(e: AdminError) -> tuple[Response, int]:
    return jsonify({"error": e.message}), e.status


@bp.errorhandler(NotFound)
def _not_found(e: NotFound) -> tuple[Response, int]:
    return jsonify({"error": str(e)}), 404


def _need_user(state: SandboxState, userid: int) -> None:
    if state.get_user(userid) is None:
        raise AdminError(404, f"no user {userid}")


@bp.post("/sandbox/admin/course_completion")
def admin_course_completion() -> Response:
    """Mark a course complete for a learner now (what the completion cron does once the criteria are met)."""
    state = _admin()
    userid, courseid = _int("userid"), _int("courseid")
    _need_user(state, userid)
    when = _int("timecompleted", 0) or None
    row = state.complete_course(courseid, userid, when=when)
    return jsonify({"id": row["id"], "userid": userid, "courseid": courseid, "timecompleted": row["timecompleted"]})


@bp.post("/sandbox/admin/activity_completion")
def admin_activity_completion() -> Response:
    state = _admin()
    userid, cmid, completionstate = _int("userid"), _int("cmid"), _int("completionstate", 1)
    _need_user(state, userid)
    if completionstate not in (0, 1, 2, 3):
        raise AdminError(400, "completionstate must be 0, 1, 2 or 3")
    row = state.set_activity_completion(cmid, userid, completionstate, actor=ADMIN_ID)
    grade = request.values.get("grade")
    if grade not in (None, ""):
        try:
            state.grade_activity(cmid, userid, float(grade), grademax=float(request.values.get("grademax") or 100))
        except ValueError:
            raise AdminError(400, f"grade must be a number, got {grade!r}") from None
    return jsonify({"id": row["id"], "cmid": cmid, "userid": userid, "completionstate": row["completionstate"],
                    "timemodified": row["timemodified"]})


@bp.post("/sandbox/admin/self_enrol")
def admin_self_enrol() -> Response:
    """A learner clicks "Enrol me" on a course's enrolment page (enrol_self): enrolled by the first self
    instance that lets them in, or refused (403) with the reason Moodle shows them."""
    state = _admin()
    userid, courseid = _int("userid"), _int("courseid", 0)
    _need_user(state, userid)
    if courseid == 0:  # every course open to them, as a teacher taking every elective offered would
        courses = state.self_enrol_options(userid)
        for cid in courses:
            state.self_enrol(cid, userid)
        return jsonify({"userid": userid, "courseids": courses, "enrolled": True})
    if state.get_course(courseid) is None:
        raise AdminError(404, f"no course {courseid}")
    try:
        inst = state.self_enrol(courseid, userid)
    except NotFound as e:
        raise AdminError(403, str(e)) from None
    return jsonify({"userid": userid, "courseid": courseid, "courseids": [courseid], "enrolid": inst["id"],
                    "enrolled": True})


@bp.get("/sandbox/admin/self_enrol_options")
def admin_self_enrol_options() -> Response:
    """The courses a user could self-enrol in now ("Enrol me" shown): {"userid", "courseids"}."""
    state = _admin()
    userid = _int("userid")
    _need_user(state, userid)
    return jsonify({"userid": userid, "courseids": state.self_enrol_options(userid)})


@bp.post("/sandbox/admin/cohort_sync")
def admin_cohort_sync() -> Response:
    """Add an enrol_cohort instance to a course (Enrolment methods > Cohort sync): its members are enrolled."""
    state = _admin()
    courseid, cohortid = _int("courseid"), _int("cohortid")
    return jsonify({"enrolid": state.add_cohort_sync(courseid, cohortid, _int("roleid", 5))})


@bp.post("/sandbox/admin/enrol_plugin")
def admin_enrol_plugin() -> Response:
    """Enable (enabled=1) or disable (enabled=0) an enrolment plugin (Manage enrol plugins)."""
    state = _admin()
    name = _text("name", re.compile("manual|self|cohort|guest"))
    state.set_enrol_plugin(name, _bool("enabled"))
    return jsonify({"name": name, "enabled": state.enrol_plugin_enabled(name)})


@bp.post("/sandbox/admin/course_module")
def admin_course_module() -> Response:
    state = _admin()
    modname = (request.values.get("modname") or "page").strip()
    name = request.values.get("name") or modname.capitalize()
    cmid = state.add_course_module(_int("courseid"), modname, name, request.values.get("idnumber") or "",
                                   completion=_int("completion", 1))
    return jsonify({"cmid": cmid})


@bp.post("/sandbox/admin/completion_criteria")
def admin_completion_criteria() -> Response:
    state = _admin()
    courseid = _int("courseid")
    cmids = [int(x) for x in (request.values.get("cmids") or "").split(",") if x.strip()]
    state.set_completion_criteria(courseid, self_completion=request.values.get("self") in {"1", "true"},
                                  activities=cmids, aggregation=_int("aggregation", 1))
    return jsonify({"courseid": courseid, "criteria": len(state.criteria(courseid))})


@bp.post("/sandbox/admin/run_cron")
def admin_run_cron() -> Response:
    state = _admin()
    return jsonify({"completed": [{"userid": u, "courseid": c} for u, c in state.run_completion_cron()]})


@bp.post("/sandbox/admin/token")
def admin_token() -> Response:
    state = _admin()
    userid = _int("userid")
    _need_user(state, userid)
    kind = request.values.get("kind") or None
    if kind not in (None, "admin", "user", "norest"):
        raise AdminError(400, "kind must be admin, user or norest")
    return jsonify({"userid": userid, "token": state.mint_token(userid, kind)})


# ------------------------------------------------------------------ site administration (what an admin changes
# on Moodle's admin pages or with admin/cli/cfg.php; tests use these to make the site ready or not)

_CAPABILITY = re.compile(r"[a-z][a-z0-9_]*/[a-z0-9_]+:[a-z0-9_]+")
_SHORTNAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_SWITCHES = {"mail_fails": "sandbox_mail_fails", "receiver_blocked": "sandbox_receiver_blocked"}


def _text(name: str, pattern: re.Pattern[str] | None = None, default: str | None = None) -> str:
    raw = request.values.get(name)
    if raw in (None, ""):
        if default is None:
            raise AdminError(400, f"missing field: {name}")
        return default
    if pattern is not None and not pattern.fullmatch(raw):
        raise AdminError(400, f"field {name} is not valid: {raw!r}")
    return raw


def _bool(name: str) -> bool:
    raw = _text(name)
    if raw not in {"0", "1"}:
        raise AdminError(400, f"field {name} must be 0 or 1, got {raw!r}")
    return raw == "1"


@bp.post("/sandbox/admin/role_user")
def admin_role_user() -> Response:
    """The docs' creditbridge role and a user holding it, with a token: {"userid", "token"}."""
    state = _admin()
    username = _text("username", re.compile(r"[a-z0-9_.@-]{1,100}"), ROLE_USERNAME)
    userid = state.setup_role_user(username, list(REQUIRED_CAPABILITIES))
    return jsonify({"userid": userid, "token": state.mint_token(userid, "user"),
                    "capabilities": sorted(state.capabilities_of(userid))})


@bp.post("/sandbox/admin/capability")
def admin_capability() -> Response:
    """Give (allow=1) or take (allow=0) a capability of the creditbridge role (Define roles)."""
    state = _admin()
    capability, allowed = _text("capability", _CAPABILITY), _bool("allow")
    state.set_capability(capability, allowed)
    return jsonify({"capability": capability, "allowed": allowed})


@bp.post("/sandbox/admin/profile_field")
def admin_profile_field() -> Response:
    """Add (action=add, datatype text|menu|checkbox, options one per line) or remove a user profile field."""
    state = _admin()
    shortname, action = _text("shortname", _SHORTNAME), _text("action", re.compile("add|remove"))
    if action == "remove":
        if not state.remove_profile_field(shortname):
            raise AdminError(404, f"no profile field {shortname}")
    else:
        if shortname in state.profile_field_names():
            raise AdminError(400, f"profile field {shortname} exists")
        state.add_profile_field(shortname, request.values.get("name") or shortname,
                                _text("datatype", re.compile("text|menu|checkbox"), "text"),
                                request.values.get("options") or "")
    return jsonify({"profilefields": state.profile_field_names()})


@bp.post("/sandbox/admin/course_field")
def admin_course_field() -> Response:
    """Add (action=add, type text|number|select|checkbox) or remove a course custom field."""
    state = _admin()
    shortname, action = _text("shortname", _SHORTNAME), _text("action", re.compile("add|remove"))
    if action == "remove":
        if not state.remove_course_field(shortname):
            raise AdminError(404, f"no course field {shortname}")
    else:
        if shortname in state.course_field_names():
            raise AdminError(400, f"course field {shortname} exists")
        state.add_course_field(shortname, request.values.get("name") or shortname,
                               _text("type", re.compile("text|number|select|checkbox"), "text"))
    return jsonify({"coursefields": state.course_field_names()})


@bp.post("/sandbox/admin/welcome")
def admin_welcome() -> Response:
    """Course welcome messages of enrol_manual: sendoption 0 (off) .. 3; scope default (the plugin setting
    for new instances), instances (existing instances, or one course's with courseid) or all (both)."""
    state = _admin()
    sendoption = _int("sendoption", WELCOME_DEFAULT)
    if sendoption not in (0, 1, 2, 3):
        raise AdminError(400, "sendoption must be 0, 1, 2 or 3")
    scope = _text("scope", re.compile("default|instances|all"), "all")
    courseid = _int("courseid", 0) or None
    if courseid is not None and state.manual_instance(courseid) is None:
        raise AdminError(404, f"course {courseid} has no manual enrolment instance")
    if scope in ("default", "all") and courseid is None:
        state.set_welcome_default(sendoption)
    changed = state.set_welcome_instances(sendoption, courseid) if scope in ("instances", "all") else 0
    return jsonify({"manual_default": state.welcome_default(), "instances_sending": state.welcome_instances_sending(),
                    "changed": changed})


@bp.get("/sandbox/admin/welcome_messages")
def admin_welcome_messages() -> Response:
    """Every course welcome message enrolments caused: {"messages": [{courseid, userid, status}...]}."""
    state = _admin()
    return jsonify({"messages": [{"courseid": m["courseid"], "userid": m["userid"], "sendoption": m["sendoption"],
                                  "status": m["status"]} for m in state.welcome_messages()]})


@bp.post("/sandbox/admin/switch")
def admin_switch() -> Response:
    """mail_fails: outgoing mail fails (welcome messages are not sent); receiver_blocked: curl security blocks
    the plugin's endpoint (the readiness function says so and the webhook sender sends nothing)."""
    state = _admin()
    name = _text("name")
    if name not in _SWITCHES:
        raise AdminError(400, f"unknown switch {name!r} (known: {', '.join(sorted(_SWITCHES))})")
    on = _bool("on")
    state.set_flag(_SWITCHES[name], on)
    return jsonify({"name": name, "on": on})


@bp.post("/sandbox/admin/outage")
def admin_outage() -> Response:
    """The next `calls` web-service requests after `after` more are answered HTTP 503 with Retry-After."""
    _admin()
    after, calls = _int("after", 0), _int("calls")
    if after < 0 or calls < 0:
        raise AdminError(400, "after and calls must be 0 or more")
    current_app.extensions["sandbox_outage"].set(after, calls)
    return jsonify({"after": after, "calls": calls})


@bp.post("/sandbox/admin/receiver")
def admin_receiver() -> Response:
    """The plugin's endpoint setting (local_creditbridge | endpoint)."""
    state = _admin()
    url = _text("url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AdminError(400, f"url must be an http(s) URL with a host, got {url!r}")
    state.set_config("local_creditbridge_endpoint", url)
    return jsonify({"url": state.config("local_creditbridge_endpoint")})


@bp.post("/sandbox/admin/service")
def admin_service() -> Response:
    """Add (present=1) or remove (present=0) a function of the token's external service."""
    state = _admin()
    function = _text("function")
    if function not in FUNCTIONS:
        raise AdminError(404, f"the sandbox has no function {function}")
    state.set_in_service(function, _bool("present"))
    return jsonify({"function": function, "present": function not in state.outside_service()})
