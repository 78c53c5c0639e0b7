"""Reading a rule file: YAML → validated Programme, or every problem with its path in the file.

A file either loads completely or not at all: nothing is built from a file with any problem.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from creditbridge import CreditbridgeError
from creditbridge.input_limits import NoAliasLoader, not_regular
from creditbridge.programmes.schema import Programme


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. roles.teacher.components[2].cap
    reason: str
    line: int | None = None  # 1-based line in the file, when known

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<file>'}: {self.reason}{where}"

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "line": self.line}


class RuleFileError(CreditbridgeError):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{source}: invalid rule file: {shown}{more}")


class ProgrammeNotFound(CreditbridgeError):
    pass


class NoRuleFile(ProgrammeNotFound):
    """The programme has no rule file at all: its code names none of the shipped programmes/rules/*.yaml."""


def _path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest node of `loc` present in the YAML tree (a missing key points at its parent)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def _reason(err: ErrorDetails) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err.get("type") == "extra_forbidden":
        return "unknown setting (check the spelling)"
    if err.get("type") == "missing":
        return "required setting is missing"
    return msg


class _RuleLoader(NoAliasLoader):
    """Safe YAML without implicit timestamps: pydantic parses dates, so a bad one ("2022-02-30") is reported
    with its path like any other problem instead of failing inside the YAML parser. Rule files are data
    (`--rules`, `rules check FILE` take any file): no anchors or aliases, as in every data file."""


_RuleLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def parse_programme(text: str, source: str) -> Programme:
    """Validate rule-file text; raise RuleFileError listing every problem found."""
    try:
        data = yaml.load(text, Loader=_RuleLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RuleFileError(source, [Problem("", f"not valid YAML: {getattr(e, 'problem', e)}",
                                             mark.line + 1 if mark else None)]) from e
    if not isinstance(data, dict):
        raise RuleFileError(source, [Problem("", "a rule file is a YAML mapping (id, name, year, ...)", 1)])
    problems: list[Problem] = []
    # The node tree (for the line of a problem) only when there is a problem: composing it costs a second
    # parse of the file, which every `credits evaluate` paid (a third of a run with nothing marked).
    root = yaml.compose(text, Loader=_RuleLoader) if "hash" in data else None
    if "hash" in data:
        problems.append(Problem("hash", "computed from the file by load_programme: do not set it",
                                line_of(root, ("hash",))))
        data = {k: v for k, v in data.items() if k != "hash"}
    try:
        programme = Programme.model_validate(data)
    except ValidationError as e:
        root = root or yaml.compose(text, Loader=_RuleLoader)
        for err in e.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(_path_text(loc), _reason(err), line_of(root, loc)))
        raise RuleFileError(source, problems) from None
    if problems:
        raise RuleFileError(source, problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return programme.model_copy(update={"hash": digest})


def builtin_rule_path(code: str) -> Path | None:
    # Only a shipped programme's own name: "../x" or "a/b" must not reach a file outside the rules folder.
    if code not in builtin_programmes():
        return None
    candidate = resources.files("creditbridge.programmes").joinpath("rules", f"{code}.yaml")
    try:
        return Path(str(candidate)) if candidate.is_file() else None
    except OSError:  # a code no file name can hold (too long): no rule file of that programme
        return None


def builtin_programmes() -> list[str]:
    folder = resources.files("creditbridge.programmes").joinpath("rules")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> Programme:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuleFileError(path, [Problem("", f"not UTF-8 text (byte {e.start})")]) from e
    return parse_programme(text, path)


def load_programme(code_or_path: str | Path) -> Programme:
    """A programme by id (the rule files shipped in programmes/rules/) or by the path of a rule file."""
    text = str(code_or_path)
    path = Path(text)
    # A shipped programme's id is its shipped file, whatever file of that name the working directory holds.
    shipped = builtin_rule_path(text) if isinstance(code_or_path, str) else None
    st = _stat(path if shipped is None else shipped)
    if shipped is not None:
        path = shipped
    elif not (text.endswith((".yaml", ".yml")) or (st is not None and stat.S_ISREG(st.st_mode))):
        found = builtin_rule_path(text)
        if found is None:
            raise NoRuleFile(f"no rule file for programme {text!r} (known: {', '.join(builtin_programmes())})")
        path, st = found, _stat(found)
    if st is None:
        raise ProgrammeNotFound(f"rule file {path} not found")
    what = not_regular(st.st_mode)
    if what is not None:  # a FIFO would block the read, a directory has nothing to read
        raise ProgrammeNotFound(f"rule file {path}: is {what}, not a regular file")
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def load_programme_if_any(code: str | Path) -> Programme | None:
    """The programme's rules, or None when it has no rule file at all (the flows then apply no programme rule:
    see docs). A rule file that exists but cannot be read or is invalid raises (ProgrammeNotFound naming it,
    RuleFileError listing its problems): no other programme's rules ever stand in for it."""
    try:
        return load_programme(code)
    except NoRuleFile:
        return None


def _stat(path: Path) -> os.stat_result | None:
    """The file's status; None when there is no such file, or the name cannot be one (too long, through a
    file): a programme code such as "sd-2022" is looked up as a path first."""
    try:
        return path.stat()
    except OSError as e:
        if isinstance(e, FileNotFoundError | NotADirectoryError) or e.errno == errno.ENAMETOOLONG:
            return None
        raise ProgrammeNotFound(f"rule file {path}: cannot be read: {e.strerror or type(e).__name__}") from e
