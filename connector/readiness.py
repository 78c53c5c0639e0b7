"""A site's readiness for creditbridge: what `creditbridge moodle check` reports.

Core web services tell which functions the token's service holds (core_webservice_get_site_info); the
plugin's read-only function `local_creditbridge_get_site_readiness` tells the rest (the token user's
capabilities, the profile and course custom fields, welcome messages of manual enrolment, whether curl
security blocks the receiver). Every finding names what fixes it: an admin page or an admin/cli/cfg.php line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from creditbridge.connector.errors import AccessDeniedError, FunctionNotInServiceError, UnknownFunctionError
from creditbridge.connector.functions import (
    CONFIGURE_ENROLMENT_FUNCTION,
    CONFIGURE_ENROLMENT_SINCE,
    PLUGIN_FUNCTIONS_SINCE,
    READINESS_FUNCTION,
    REQUIRED_CAPABILITIES,
    REQUIRED_FUNCTIONS,
    WELCOME_COURSES_FUNCTION,
)
from creditbridge.connector.moodle import MoodleClient
from creditbridge.redact import mask_url
from creditbridge.settings.model import SyncSettings

Severity = Literal["error", "warning"]

SERVICE_PAGE = "Site administration > Server > Web services > External services > (the token's service) > Functions"
ROLES_PAGE = "Site administration > Users > Permissions > Define roles > {role}: allow {capability}"
PROFILE_PAGE = ("Site administration > Users > Accounts > User profile fields > Create a new profile field: "
                "{kind}, short name {shortname}")
COURSE_FIELD_PAGE = ("Site administration > Courses > Course custom fields > Add a new custom field: {kind}, "
                     "short name {shortname}")
WELCOME_DEFAULT_FIX = ("php admin/cli/cfg.php --component=enrol_manual --name=sendcoursewelcomemessage --set=0 "
                       "(Site administration > Plugins > Enrolments > Manual enrolments > "
                       "Send course welcome message: No)")
WELCOME_INSTANCES_FIX = ("in each managed course: Participants > Enrolment methods > Manual enrolments > Edit > "
                         "Send course welcome message: No")
PLUGIN_ENDPOINT_PAGE = "Site administration > Plugins > Local plugins > creditbridge > endpoint"
ENROL_PLUGINS_PAGE = "Site administration > Plugins > Enrolments > Manage enrol plugins: enable {plugin}"
PLUGIN_UPGRADE_FIX = ("install local_creditbridge 1.2 (version {version}) from this repository's "
                      "local_creditbridge/ and run admin/cli/upgrade.php")
# What only the self policy of electives needs (docs/sync.md "Enrolment policy").
SELF_POLICY_ONLY = {CONFIGURE_ENROLMENT_FUNCTION, WELCOME_COURSES_FUNCTION, "moodle/course:enrolconfig",
                    "enrol/manual:config", "enrol/self:config"}
# The kind of each profile field sync writes (by its logical name in [sync] profile_fields).
PROFILE_KINDS = {"stage": "Drop-down menu", "rural": "Checkbox"}
COURSE_FIELD_KINDS = {"hours": "Number (1 decimal place)"}
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    fix: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class _Lenient(BaseModel):
    # Lax types: an XML answer carries every leaf as a string ("1"), a plugin may send booleans for 0/1;
    # keys added by a later plugin version are ignored.
    model_config = ConfigDict(extra="ignore", strict=False)


class _Capability(_Lenient):
    name: str
    allowed: int


class _Welcome(_Lenient):
    manual_default: int
    instances_sending: int


class _Receiver(_Lenient):
    url: str
    blocked: int
    reason: str = ""


class Readiness(_Lenient):
    """The readiness function's answer (the contract the plugin and the sandbox both keep)."""

    release: str
    plugin_version: int
    capabilities: list[_Capability]
    profilefields: list[str]
    coursefields: list[str]
    welcomemessage: _Welcome
    receiver: _Receiver
    # Enabled enrolment plugins among manual, self, cohort (local_creditbridge 1.2; None from an older plugin).
    enrolplugins: list[str] | None = None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(the answer)"
    return f"{where}: {err['msg']}"


def read_readiness(client: MoodleClient, available: set[str]) -> tuple[Readiness | None, list[Finding]]:
    """Ask the plugin's readiness function; without it, findings saying what cannot be checked and why."""
    cannot = "capabilities, profile fields, course fields, welcome messages and the receiver cannot be checked"
    add_it = (f"install the local_creditbridge plugin and add {READINESS_FUNCTION} to the service "
              f"({SERVICE_PAGE} > Add functions)")
    if READINESS_FUNCTION not in available:
        return None, [Finding("readiness_unavailable", "warning",
                              f"{READINESS_FUNCTION} is not in the token's service: {cannot}", add_it)]
    try:
        answer = client.call(READINESS_FUNCTION)
    except (FunctionNotInServiceError, UnknownFunctionError):
        return None, [Finding("readiness_unavailable", "warning",
                              f"{READINESS_FUNCTION} is not available to the token: {cannot}", add_it)]
    except AccessDeniedError as e:
        return None, [Finding("readiness_denied", "warning",
                              f"{READINESS_FUNCTION} was refused ({e.message}): {cannot}",
                              ROLES_PAGE.format(role="(the token user's role)",
                                                capability="local/creditbridge:viewreadiness"))]
    try:
        return Readiness.model_validate(answer), []
    except ValidationError as e:
        return None, [Finding("readiness_unreadable", "warning",
                              f"{READINESS_FUNCTION} answered something unexpected at {_first_error(e)}: {cannot}",
                              "update local_creditbridge to the version this creditbridge ships")]


def _needed(name: str, sync: SyncSettings | None) -> bool:
    return sync is None or sync.electives == "self" or name not in SELF_POLICY_ONLY


def function_findings(available: set[str], sync: SyncSettings | None = None) -> list[Finding]:
    out = []
    for name, purpose in REQUIRED_FUNCTIONS.items():
        if name in available or not _needed(name, sync):
            continue
        fix = f"{SERVICE_PAGE} > Add functions: {name}"
        since = PLUGIN_FUNCTIONS_SINCE.get(name)
        if since is not None:
            fix = (f"{PLUGIN_UPGRADE_FIX.format(version=since)}, then {fix} (or set [sync] "
                   'electives = "manual": one enrolment call per teacher and elective)')
        out.append(Finding("function_missing", "error",
                           f"function {name} is not in the token's service (needed to {purpose})", fix))
    return out


def capability_findings(r: Readiness, username: str, sync: SyncSettings | None = None) -> list[Finding]:
    allowed = {c.name for c in r.capabilities if c.allowed}
    asked = {c.name for c in r.capabilities}
    # A capability an older plugin does not ask about is not reported missing: plugin_findings says to upgrade.
    return [Finding("capability_missing", "error",
                    f"the token user {username} lacks {cap} (needed to {why})",
                    ROLES_PAGE.format(role=f"(the role of {username}, e.g. creditbridge)", capability=cap))
            for cap, why in REQUIRED_CAPABILITIES.items()
            if cap not in allowed and _needed(cap, sync) and (cap in asked or cap not in SELF_POLICY_ONLY)]


def enrolment_findings(r: Readiness, sync: SyncSettings) -> list[Finding]:
    """The self policy needs local_creditbridge 1.2 and enrol_self enabled."""
    if sync.electives != "self":
        return []
    if r.plugin_version < CONFIGURE_ENROLMENT_SINCE or r.enrolplugins is None:
        return [Finding("plugin_old", "error",
                        f"local_creditbridge {r.plugin_version} predates {CONFIGURE_ENROLMENT_FUNCTION}, which opens "
                        "electives to their teachers (needed by [sync] electives = \"self\")",
                        PLUGIN_UPGRADE_FIX.format(version=CONFIGURE_ENROLMENT_SINCE))]
    if "self" not in r.enrolplugins:
        return [Finding("enrol_self_disabled", "error",
                        "self enrolment (enrol_self) is disabled: teachers could not enrol in electives",
                        ENROL_PLUGINS_PAGE.format(plugin="Self enrolment"))]
    return []


def field_findings(r: Readiness, sync: SyncSettings) -> list[Finding]:
    out = []
    present = set(r.profilefields)
    for logical, shortname in sync.profile_fields.items():
        if shortname and shortname not in present:
            out.append(Finding("profile_field_missing", "error",
                               f"user profile field {shortname} (roster {logical}) does not exist: Moodle drops "
                               "its values without a word",
                               PROFILE_PAGE.format(kind=PROFILE_KINDS.get(logical, "Text input"),
                                                   shortname=shortname)))
    if sync.hours_field and sync.hours_field not in set(r.coursefields):
        out.append(Finding("course_field_missing", "error",
                           f"course custom field {sync.hours_field} (catalog hours) does not exist: Moodle drops "
                           "its values without a word",
                           COURSE_FIELD_PAGE.format(kind=COURSE_FIELD_KINDS["hours"], shortname=sync.hours_field)))
    return out


def welcome_findings(r: Readiness) -> list[Finding]:
    out = []
    w = r.welcomemessage
    if w.manual_default:
        out.append(Finding("welcome_default_on", "error",
                           "manual enrolment sends a course welcome message by default "
                           f"(enrol_manual sendcoursewelcomemessage = {w.manual_default}): every new course's "
                           "enrolments would mail each teacher", WELCOME_DEFAULT_FIX))
    if w.instances_sending:
        out.append(Finding("welcome_instances_on", "error",
                           f"{w.instances_sending} manual enrolment instance(s) send a course welcome message on "
                           "every enrolment", WELCOME_INSTANCES_FIX))
    return out


def _shown(parts: SplitResult) -> str:
    """The endpoint without user:password, query or fragment: a secret may sit there, and output is shared."""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def receiver_findings(r: Readiness) -> list[Finding]:
    url = r.receiver.url
    if not url:
        # A warning: without webhooks `intake reconcile` still finds completions, only later.
        return [Finding("receiver_not_configured", "warning", "the plugin has no endpoint: no webhook is sent",
                        f"{PLUGIN_ENDPOINT_PAGE}: the URL of `creditbridge serve` + /webhooks/moodle")]
    if not r.receiver.blocked:
        return []
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    except ValueError:  # a port that is not a number, an unclosed [IPv6: the plugin's setting is broken, say so
        parts, port = urlsplit(""), 0
    if port == 0 or not parts.hostname:
        return [Finding("receiver_invalid", "error", f"the plugin's endpoint is not a usable URL: {r.receiver.reason}",
                        f"{PLUGIN_ENDPOINT_PAGE}: the URL of `creditbridge serve` + /webhooks/moodle")]
    fixes = [f"php admin/cli/cfg.php --name=curlsecurityblockedhosts --set=<the list without {parts.hostname} "
             "or its range>"]
    if port not in (80, 443):
        fixes.append(f"php admin/cli/cfg.php --name=curlsecurityallowedport --set=$'443\\n80\\n{port}'")
    fixes.append("(Site administration > General > Security > HTTP security)")
    return [Finding("receiver_blocked", "error",
                    f"the site refuses to send webhooks to {_shown(parts)}: "
                    f"{r.receiver.reason or 'blocked by curl security'}",
                    "; ".join(fixes))]


def readiness_report(client: MoodleClient, sync: SyncSettings) -> dict[str, Any]:
    """Everything `moodle check` prints: site, token user, findings; ready when no finding is an error."""
    info = client.get_site_info()
    available = {f["name"] for f in info.get("functions", [])}
    username = str(info.get("username") or "")
    findings = function_findings(available, sync)
    readiness, unavailable = read_readiness(client, available)
    findings += unavailable
    if readiness is not None:
        findings += capability_findings(readiness, username, sync)
        findings += enrolment_findings(readiness, sync)
        findings += field_findings(readiness, sync)
        findings += welcome_findings(readiness)
        findings += receiver_findings(readiness)
    missing = [name for name in REQUIRED_FUNCTIONS if name not in available and _needed(name, sync)]
    ready = not any(f.severity == "error" for f in findings)
    return {
        "url": mask_url(client.settings.url),  # a password in the URL is never shown
        "sitename": info.get("sitename"),
        "release": info.get("release"),
        "version": info.get("version"),
        "user": {"id": info.get("userid"), "username": username, "fullname": info.get("fullname")},
        "required": len(REQUIRED_FUNCTIONS),
        "missing": [{"function": name, "purpose": REQUIRED_FUNCTIONS[name]} for name in missing],
        "ok": not missing,
        "readiness_checked": readiness is not None,
        "plugin_version": readiness.plugin_version if readiness else None,
        "ready": ready,
        "findings": [f.as_json() for f in findings],
    }
