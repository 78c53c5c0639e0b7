"""Moodle's external-API machinery: PHP's form decoding, parameter descriptions and validation
(core_external\\external_api::validate_parameters), and the REST server's JSON and XML answers."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from creditbridge.sandbox.errors import INVALID_PARAMETER, InvalidParameter

REQUIRED, OPTIONAL, DEFAULT = 1, 0, 2
# PHP's max_input_vars on the recorded site (limits.json): variables past it are dropped before Moodle runs.
MAX_INPUT_VARS = 5000


# ---------------------------------------------------------------- descriptions

@dataclass
class Value:
    type: str
    required: int = REQUIRED
    default: Any = None
    allownull: bool = False


@dataclass
class Single:
    keys: dict[str, Any]
    required: int = REQUIRED
    default: Any = None


@dataclass
class Multiple:
    content: Any
    required: int = REQUIRED
    default: Any = field(default=None)


def opt(desc: Any) -> Any:
    desc.required = OPTIONAL
    return desc


def dflt(desc: Any, default: Any) -> Any:
    desc.required, desc.default = DEFAULT, default
    return desc


# ---------------------------------------------------------------- PHP form decoding

_KEY = re.compile(r"\[([^\[\]]*)\]")


def php_decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`users[0][customfields][1][type]=x` -> nested dicts, as PHP builds $_POST (`a[]` appends, last wins)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        bracket = name.find("[")
        if bracket <= 0:
            out[name.replace(".", "_").replace(" ", "_")] = value
            continue
        base, rest = name[:bracket], name[bracket:]
        keys = [base, *_KEY.findall(rest)]
        node: dict[str, Any] = out
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if key == "":
                key = str(max((int(k) for k in node if k.lstrip("-").isdigit()), default=-1) + 1)
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
    return out


# ---------------------------------------------------------------- validation

_EMAIL = re.compile(
    r"^[-!#$%&'*+\\/0-9=?A-Z^_`a-z{|}~]+(\.[-!#$%&'*+\\/0-9=?A-Z^_`a-z{|}~]+)*"
    r"@[-!#$%&'*+\\/0-9=?A-Z^_`a-z{|}~]+\.[-!#$%&'*+\\./0-9=?A-Z^_`a-z{|}~]+$")
_TIMEZONE = re.compile(r"^(([+-]?(0?[0-9](\.[5|0])?|1[0-3](\.0)?|1[0-2]\.5))|(99)|[A-Za-z0-9]+(/?[A-Za-z_-])+)$")
_TAGS = re.compile(r"<[^>]*>")
_FLOAT = re.compile(r"^[+-]?[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?$", re.I)
LANGS = {"en"}
THEMES = {"boost", "classic"}


def validate_email(address: str) -> bool:
    """Moodle's validate_email() regular expression."""
    return bool(_EMAIL.match(address))


def clean_param(value: str, ptype: str) -> Any:
    """The parts of clean_param() that decide whether a value passes unchanged."""
    if ptype == "int":
        m = re.match(r"^\s*([+-]?\d+)", value)
        # PHP's (int) saturates at the 64-bit limits, so an over-long number does not survive the cast.
        return max(-(2**63), min(2**63 - 1, int(m.group(1)))) if m else 0
    if ptype == "float":
        try:
            return float(value)
        except ValueError:
            return 0.0
    if ptype == "bool":
        return 1 if value.strip().lower() in {"1", "yes", "on", "true"} else 0
    if ptype in {"text", "notags"}:
        return _TAGS.sub("", value)
    if ptype == "alpha":
        return re.sub(r"[^a-zA-Z]", "", value)
    if ptype == "alphanum":
        return re.sub(r"[^a-zA-Z0-9]", "", value)
    if ptype == "alphaext":
        return re.sub(r"[^a-zA-Z_-]", "", value)
    if ptype == "alphanumext":
        return re.sub(r"[^a-zA-Z0-9_-]", "", value)
    if ptype in {"plugin", "component", "auth"}:
        return value if re.fullmatch(r"[a-z][a-z0-9_]*", value) else ""
    if ptype == "safedir":
        return re.sub(r"[^a-zA-Z0-9_-]", "", value)
    if ptype == "username":
        return re.sub(r"[^-.@_a-z0-9]", "", value.strip().lower().replace(" ", ""))
    if ptype == "email":
        return value if validate_email(value) else ""
    if ptype == "lang":
        return value if value in LANGS else ""
    if ptype == "theme":
        return value if value in THEMES else ""
    if ptype == "timezone":
        return value if _TIMEZONE.match(value) else ""
    if ptype == "raw_trimmed":
        return value.strip()
    return value


def _type_debug(value: Any, ptype: str) -> str:
    return f'Invalid external api parameter: the value is "{value}", the server was expecting "{ptype}" type'


def _php_print_r(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def validate(desc: Any, params: Any) -> Any:
    if isinstance(desc, Value):
        if isinstance(params, dict):
            raise InvalidParameter("Scalar type expected, array or object received.")
        if desc.type == "bool" and params in (True, False, 0, 1, "0", "1"):
            return bool(int(params))
        debuginfo = _type_debug(params, desc.type)
        if params is None:
            if desc.allownull:
                return None
            raise InvalidParameter(debuginfo)
        if not isinstance(params, str):  # defaults given as Python values
            return params
        cleaned = clean_param(params, desc.type)
        if desc.type == "float":
            if not _FLOAT.match(params) or params in {"", ".", "+", "-"}:
                raise InvalidParameter(debuginfo)
        elif str(cleaned) != params:
            raise InvalidParameter(debuginfo)
        return cleaned
    if isinstance(desc, Single):
        if not isinstance(params, dict):
            raise InvalidParameter(f"Only arrays accepted. The bad value is: '{_php_print_r(params)}'")
        rest = dict(params)
        result: dict[str, Any] = {}
        for key, sub in desc.keys.items():
            if key not in rest:
                if sub.required == REQUIRED:
                    raise InvalidParameter(f"Missing required key in single structure: {key}")
                if sub.required == DEFAULT:
                    try:
                        result[key] = validate(sub, sub.default)
                    except InvalidParameter as e:
                        raise InvalidParameter(f"{key} => {INVALID_PARAMETER}: {e.debuginfo}") from None
            else:
                try:
                    result[key] = validate(sub, rest[key])
                except InvalidParameter as e:
                    raise InvalidParameter(f"{key} => {INVALID_PARAMETER}: {e.debuginfo}") from None
            rest.pop(key, None)
        if rest:
            raise InvalidParameter(f"Unexpected keys ({', '.join(rest)}) detected in parameter array.")
        return result
    if isinstance(desc, Multiple):
        if isinstance(params, list):
            return [validate(desc.content, p) for p in params]
        if not isinstance(params, dict):
            raise InvalidParameter(f"Only arrays accepted. The bad value is: '{_php_print_r(params)}'")
        return [validate(desc.content, p) for p in params.values()]
    raise TypeError(desc)


# ---------------------------------------------------------------- answers

def to_json(value: Any) -> str:
    """PHP json_encode(): compact, non-ASCII as \\uXXXX, "/" escaped, integral floats as integers."""
    def fix(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return json.dumps(fix(value), ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def _xml_value(value: Any) -> str:
    if value is None:
        return '<VALUE null="null"/>\n'
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"<VALUE>{html.escape(str(value), quote=True).replace('&#x27;', chr(39))}</VALUE>\n"


def xmlize(value: Any, desc: Any = None) -> str:
    """webservice_rest_server::xmlize_result(): with a description, keys follow it and absent ones are null."""
    if isinstance(desc, Value) or (desc is None and not isinstance(value, dict | list)):
        return _xml_value(value)
    if isinstance(desc, Multiple) or (desc is None and isinstance(value, list)):
        inner = desc.content if isinstance(desc, Multiple) else None
        return "<MULTIPLE>\n" + "".join(xmlize(v, inner) for v in (value or [])) + "</MULTIPLE>\n"
    items = value if isinstance(value, dict) else {}
    if isinstance(desc, Single):
        body = "".join(f'<KEY name="{k}">{xmlize(items.get(k), sub)}</KEY>\n' for k, sub in desc.keys.items())
    else:
        body = "".join(f'<KEY name="{k}">{xmlize(v)}</KEY>\n' for k, v in items.items())
    return "<SINGLE>\n" + body + "</SINGLE>\n"


XML_HEAD = '<?xml version="1.0" encoding="UTF-8" ?>\n'


def xml_response(value: Any, desc: Any = None, *, returns_nothing: bool = False) -> str:
    return XML_HEAD + "<RESPONSE>\n" + ("" if returns_nothing else xmlize(value, desc)) + "</RESPONSE>\n"


def xml_exception(envelope: dict[str, str]) -> str:
    def esc(s: str) -> str:
        return html.escape(s, quote=True).replace("&#x27;", "'")
    out = XML_HEAD + f'<EXCEPTION class="{envelope["exception"]}">\n'
    out += f"<ERRORCODE>{esc(envelope['errorcode'])}</ERRORCODE>\n<MESSAGE>{esc(envelope['message'])}</MESSAGE>\n"
    if "debuginfo" in envelope:
        out += f"<DEBUGINFO>{esc(envelope['debuginfo'])}</DEBUGINFO>\n"
    return out + "</EXCEPTION>\n"
