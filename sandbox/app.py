"""The sandbox LMS as a Flask app: Moodle's REST endpoint plus a few admin endpoints for what Moodle does
server-side (activities, completion criteria, completions, the completion cron, tokens)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from creditbridge.sandbox import errors
from creditbridge.sandbox import ws_cohorts as _ws_cohorts  # noqa: F401 - registers its functions
from creditbridge.sandbox import ws_completion as _ws_completion  # noqa: F401
from creditbridge.sandbox import ws_courses as _ws_courses  # noqa: F401
from creditbridge.sandbox import ws_enrol as _ws_enrol  # noqa: F401
from creditbridge.sandbox import ws_site as _ws_site  # noqa: F401
from creditbridge.sandbox import ws_users as _ws_users  # noqa: F401
from creditbridge.sandbox.errors import WsException
from creditbridge.sandbox.functions import FUNCTIONS, KNOWN_OUTSIDE_SERVICE, Call
from creditbridge.sandbox.state import ADMIN_ID, TOKEN_NOREST, NotFound, SandboxState
from creditbridge.sandbox.wsformat import MAX_INPUT_VARS, php_decode, to_json, validate, xml_exception, xml_response

log = logging.getLogger(__name__)
bp = Blueprint("sandbox", __name__)

WS_KEYS = {"wstoken", "wsfunction", "moodlewsrestformat"}
COMMON_HEADERS = {"Cache-Control": "private, must-revalidate, pre-check=0, post-check=0, max-age=0",
                  "Expires": "Thu, 01 Jan 1970 00:00:00 GMT", "Pragma": "no-cache", "Accept-Ranges": "none",
                  "Access-Control-Allow-Origin": "*"}
DEFAULTS: dict[str, Any] = {"SANDBOX_DB": ":memory:", "SANDBOX_DEBUG": False, "SANDBOX_WEBHOOK_URL": None,
                            "SANDBOX_WEBHOOK_SECRET": None, "SANDBOX_WWWROOT": None,
                            "SANDBOX_SITENAME": "creditbridge sandbox"}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    if not app.config.get("SANDBOX_TOKEN"):
        raise errors.CreditbridgeError("SANDBOX_TOKEN is required (the admin's web-service token)")
    state = SandboxState(app.config["SANDBOX_DB"] or ":memory:", admin_token=app.config["SANDBOX_TOKEN"])
    app.extensions["sandbox_state"] = state
    app.register_blueprint(bp)
    if app.config.get("SANDBOX_WEBHOOK_URL"):
        if not app.config.get("SANDBOX_WEBHOOK_SECRET"):
            raise errors.CreditbridgeError("SANDBOX_WEBHOOK_SECRET is required with SANDBOX_WEBHOOK_URL")
        from creditbridge.sandbox import webhook_sender
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


@bp.route("/webservice/rest/server.php", methods=["GET", "POST"])
def rest_server() -> Response:
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
        return _respond(xml_exception(envelope) if xml else to_json(envelope), xml)
    if xml:
        return _respond(xml_response(result, function.returns, returns_nothing=function.returns_nothing), xml)
    return _respond(to_json(result), xml)


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
    if found["kind"] == TOKEN_NOREST:
        raise errors.access_exception("You are not allowed to use the rest protocol (missing capability: "
                                      "webservice/rest:use)")
    name = merged.get("wsfunction")
    if not isinstance(name, str) or not name:
        raise errors.InvalidParameter("Missing function name")
    function = FUNCTIONS.get(name)
    if function is None:
        if name in KNOWN_OUTSIDE_SERVICE:
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
