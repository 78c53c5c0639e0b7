"""The Moodle client's exceptions: one root, leaves named by cause, each saying whether a retry can help.

Moodle answers every error with HTTP 200 and an envelope `{"exception", "errorcode", "message"[,
"debuginfo"]}`; `error_for()` is the single place that turns such an envelope into a class. A
production site (debug = 0) sends no `debuginfo` and collapses many validation failures into the
generic `invalidparameter`, so the classes follow the errorcode first and only refine on
`debuginfo`/`message` when the site happens to give one.
"""

from __future__ import annotations

from typing import Any, ClassVar

# A debug site echoes rejected values (an ID number sent as idnumber, say) in message and debuginfo.
from creditbridge.connector.service_errors import ExternalServiceError
from creditbridge.records import mask_id_numbers

__all__ = ["mask_id_numbers"]  # the name connector.moodle imports from here


class MoodleError(ExternalServiceError):
    """Any failure of a Moodle web-service call. Retry only when `retryable` is true.

    `code` is Moodle's errorcode (also `errorcode`); Moodle gives no request id.
    """

    # Set on an error that stopped a bulk write: the BatchResult of what went through before it.
    partial: Any = None

    def __init__(
        self,
        message: str,
        *,
        errorcode: str | None = None,
        exception: str | None = None,
        debuginfo: str | None = None,
        function: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=errorcode, status=status)  # masks the message
        self.errorcode = errorcode
        self.exception = exception
        self.debuginfo = mask_id_numbers(debuginfo) if debuginfo else debuginfo
        self.function = function

    @property
    def capability(self) -> str | None:
        """The capability a `nopermissions` answer says is missing, where its message names a known right."""
        return missing_capability(self.message) if self.errorcode == "nopermissions" else None

    def __str__(self) -> str:
        where = f"{self.function}: " if self.function else ""
        code = f" [{self.errorcode}]" if self.errorcode else ""
        detail = f" ({self.debuginfo.strip()})" if self.debuginfo else ""
        return f"{where}{self.message}{code}{detail}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(errorcode={self.errorcode!r}, message={self.message!r}, "
                f"function={self.function!r}, status={self.status!r})")

    def as_json(self) -> dict[str, object]:
        return {"error": type(self).__name__, "errorcode": self.errorcode, "exception": self.exception,
                "message": self.message, "debuginfo": self.debuginfo, "function": self.function,
                "status": self.status, "retryable": self.retryable}


class InvalidTokenError(MoodleError):
    """The token is unknown, expired or missing (`invalidtoken`). Not retryable: fix the configuration."""


class AccessDeniedError(MoodleError):
    """The token's user lacks a capability or protocol right (`nopermissions`, `accessexception`...).

    Not retryable: an administrator must grant the capability first.
    """


class FunctionNotInServiceError(AccessDeniedError):
    """The function exists but is not in the token's external service.

    Moodle answers `webservice_access_exception` / `accessexception` ("Access control exception"); a
    production site cannot be told apart from a missing `webservice/rest:use`, which is rarer, so an
    `accessexception` is classed here unless `debuginfo` names another cause. Not retryable: add the
    function to the service (`creditbridge moodle check` lists the missing ones).
    """


class UnknownFunctionError(MoodleError):
    """No such web-service function on this site (`invalidrecord` on table external_functions).

    Not retryable: the site's Moodle version or plugins lack it.
    """


class InvalidParameterError(MoodleError):
    """Moodle rejected a parameter (`invalidparameter`). Not retryable as is: the data must change.

    On a production site this is also what a duplicate username/idnumber or an invalid email gives.
    """


class RecordNotFoundError(MoodleError):
    """A referenced record does not exist (`invalidrecord`, `invaliduser`, `unknowcategory`...).

    Not retryable: the referenced id is wrong or the record was deleted.
    """


class DuplicateError(MoodleError):
    """The record clashes with an existing one (username, idnumber, shortname, email taken).

    Not retryable: the existing record should be looked up and updated instead.
    """


class CompletionError(MoodleError):
    """A completion call is not applicable (`usernotenroled`, `nocriteriaset`, `cannotviewreport`...).

    Not retryable: the course or enrolment state must change first.
    """


class TransientError(MoodleError):
    """Timeout, connection failure, HTTP 5xx or 429: the site was not reachable or overloaded.

    Retryable for reads. A write that failed this way may or may not have been applied, so retry it
    only after checking (the client's `safe=True` writes do that).
    """

    retryable: ClassVar[bool] = True


class ProtocolError(MoodleError):
    """An answer that is not Moodle's JSON/XML (an HTML error page, a proxy's reply, truncated text).

    Not retryable: something between creditbridge and Moodle is misconfigured (wrong URL, proxy).
    """


# errorcode -> class; the one table. Codes absent here fall back to MoodleError itself.
ERRORCODE_CLASSES: dict[str, type[MoodleError]] = {
    "invalidtoken": InvalidTokenError,
    "accessexception": FunctionNotInServiceError,
    "nopermissions": AccessDeniedError,
    "requireloginerror": AccessDeniedError,
    "servicerequireslogin": AccessDeniedError,
    "usersuspended": InvalidTokenError,
    "errorcatcontextnotvalid": RecordNotFoundError,
    "invalidparameter": InvalidParameterError,
    "invalidrecord": RecordNotFoundError,
    "invalidrecordunknown": RecordNotFoundError,
    "invaliduser": RecordNotFoundError,
    "invaliduserid": RecordNotFoundError,
    "useremailinvalid": InvalidParameterError,
    "usernameexists": DuplicateError,
    "emailexists": DuplicateError,
    "idnumbertaken": DuplicateError,
    "unknowcategory": RecordNotFoundError,
    "wsnoinstance": RecordNotFoundError,
    "invalidpersistenterror": InvalidParameterError,
    "codingerror": InvalidParameterError,
    "categoryidnumbertaken": DuplicateError,
    "courseidnumbertaken": DuplicateError,
    "shortnametaken": DuplicateError,
    "cohortidnumbertaken": DuplicateError,
    "usernotenroled": CompletionError,
    "nocriteriaset": CompletionError,
    "cannotviewreport": AccessDeniedError,
    "useralreadymarkedcomplete": CompletionError,
}

# A `nopermissions` answer names the missing right by its title, not its name ("Sorry, but you do not currently
# have permissions to do that (Change course full name)." in roles.json): the capabilities behind the titles a
# sync can meet, so an error says what an administrator must grant.
CAPABILITY_TITLES: dict[str, str] = {
    "Change course full name": "moodle/course:changefullname",
    "Change course short name": "moodle/course:changeshortname",
    "Change course category": "moodle/course:changecategory",
    "Change course summary": "moodle/course:changesummary",
    "Change course ID number": "moodle/course:changeidnumber",
    "Hide/show courses": "moodle/course:visibility",
    "Update course settings": "moodle/course:update",
    "Create courses": "moodle/course:create",
    "Update user profiles": "moodle/user:update",
    "Create users": "moodle/user:create",
    "Enrol users": "enrol/manual:enrol",
    "Unenrol users from the course": "enrol/manual:unenrol",
    "Assign cohort members": "moodle/cohort:assign",
    "Configure enrol instances in courses": "moodle/course:enrolconfig",
    "Configure manual enrol instances": "enrol/manual:config",
    "Configure self enrol instances": "enrol/self:config",
    "Review course enrolments": "moodle/course:enrolreview",
}


def missing_capability(message: str) -> str | None:
    """`moodle/course:changefullname` for "... (Change course full name).", None for a title not known."""
    for title, capability in CAPABILITY_TITLES.items():
        if f"({title})" in message:
            return capability
    return None


# What a DEVELOPER-debug site says in `debuginfo` for clashes that production reports as invalidparameter.
_DUPLICATE_HINTS = ("already exists", "already used", "already taken", "is not unique", "duplicate")


def error_for(
    errorcode: str | None,
    message: str,
    *,
    exception: str | None = None,
    debuginfo: str | None = None,
    function: str | None = None,
    status: int | None = None,
) -> MoodleError:
    """Build the exception for one Moodle error envelope."""
    cls = ERRORCODE_CLASSES.get(errorcode or "", MoodleError)
    info = (debuginfo or "").lower()
    if errorcode == "invalidrecord" and "external_functions" in message:
        cls = UnknownFunctionError
    elif errorcode == "invalidparameter" and any(h in info for h in _DUPLICATE_HINTS):
        cls = DuplicateError
    elif errorcode == "accessexception" and debuginfo and "access to the function" not in info:
        cls = AccessDeniedError
    elif cls is MoodleError and errorcode and "password" in errorcode.lower():
        # Moodle puts the password policy's HTML text in errorcode itself.
        cls = InvalidParameterError
    return cls(message, errorcode=errorcode, exception=exception, debuginfo=debuginfo,
               function=function, status=status)
