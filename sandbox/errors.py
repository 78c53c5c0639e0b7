"""Moodle's exceptions as the REST server reports them: PHP class, errorcode, message and (debug only) debuginfo."""

from __future__ import annotations

from creditbridge import CreditbridgeError

INVALID_PARAMETER = "Invalid parameter value detected"


class WsException(CreditbridgeError):
    """One Moodle exception. `exception` is the PHP class name exactly as Moodle 4.5 prints it."""

    def __init__(self, exception: str, errorcode: str, message: str, debuginfo: str | None = None) -> None:
        super().__init__(message)
        self.exception, self.errorcode, self.message, self.debuginfo = exception, errorcode, message, debuginfo

    def envelope(self, debug: bool) -> dict[str, str]:
        out = {"exception": self.exception, "errorcode": self.errorcode, "message": self.message}
        if debug and self.debuginfo:
            out["debuginfo"] = self.debuginfo
        return out


class InvalidParameter(WsException):
    def __init__(self, debuginfo: str = "") -> None:
        super().__init__("core\\exception\\invalid_parameter_exception", "invalidparameter", INVALID_PARAMETER,
                         debuginfo)


def moodle_exception(errorcode: str, message: str | None = None, *, module: str = "error",
                     debuginfo: str | None = None) -> WsException:
    """`new moodle_exception($errorcode, $module)`: a code whose string does not exist in the language pack
    shows as "module/errorcode" (Moodle does this for the password policy and several completion codes)."""
    return WsException("core\\exception\\moodle_exception", errorcode, message or f"{module}/{errorcode}", debuginfo)


def missing_record(table: str, value: object, *, column: str = "id") -> WsException:
    """dml_missing_record_exception of `$DB->get_record($table, [$column => $value], '*', MUST_EXIST)`."""
    shown = value if isinstance(value, int) else f"'{value}'"
    return WsException("dml_missing_record_exception", "invalidrecord",
                       f"Can't find data record in database table {table}.",
                       f"SELECT * FROM {{{table}}} WHERE {column} = ?\n[array (\n  0 => {shown},\n)]")  # noqa: S608 - debuginfo text, not a query


def invalid_user() -> WsException:
    return WsException("dml_missing_record_exception", "invaliduser", "Invalid user")


def coding_error(detail: str) -> WsException:
    return WsException("core\\exception\\coding_exception", "codingerror",
                       f"Coding error detected, it must be fixed by a programmer: {detail}")


def no_permission(capability_name: str, capability: str) -> WsException:
    return WsException("core\\exception\\required_capability_exception", "nopermissions",
                       f"Sorry, but you do not currently have permissions to do that ({capability_name}).")


ACCESS_DEBUG_FUNCTION = """Access to the function {name}() is not allowed.
                     There could be multiple reasons for this:
                     1. The service linked to the user token does not contain the function.
                     2. The service is user-restricted and the user is not listed.
                     3. The service is IP-restricted and the user IP is not listed.
                     4. The service is time-restricted and the time has expired.
                     5. The token is time-restricted and the time has expired.
                     6. The service requires a specific capability which the user does not have.
                     7. The function is called with username/password (no user token is sent)
                     and none of the services has the function to allow the user.
                     These settings can be found in Administration > Site administration
                     > Server > Web services > External services and Manage tokens."""


def access_exception(debuginfo: str) -> WsException:
    return WsException("webservice_access_exception", "accessexception", "Access control exception", debuginfo)


def invalid_token() -> WsException:
    return WsException("core\\exception\\moodle_exception", "invalidtoken", "Invalid token - token not found")
