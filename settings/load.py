"""Read the TOML file, lay the environment over it, validate once."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from creditbridge import CreditbridgeError
from creditbridge.input_limits import not_regular
from creditbridge.settings.model import Settings

CONFIG_ENV = "CREDITBRIDGE_CONFIG"

# Environment variable -> (section, key). Secrets live here so a job can be pointed at another site or
# store without editing the file; list-valued entries take comma-separated values.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "CREDITBRIDGE_MOODLE_URL": ("moodle", "url"),
    "CREDITBRIDGE_MOODLE_TOKEN": ("moodle", "token"),
    "CREDITBRIDGE_DATABASE_URL": ("database", "url"),
    "CREDITBRIDGE_WEBHOOK_SECRET": ("webhooks", "secrets"),
    "CREDITBRIDGE_REGISTRY_URL": ("registry", "url"),
    "CREDITBRIDGE_REGISTRY_KEY_ID": ("registry", "key_id"),
    "CREDITBRIDGE_REGISTRY_SECRET": ("registry", "secret"),
    "CREDITBRIDGE_REGISTRY_TARGET": ("registry", "target"),
    "CREDITBRIDGE_LRS_USERNAME": ("registry", "lrs_username"),
    "CREDITBRIDGE_LRS_PASSWORD": ("registry", "lrs_password"),
    "CREDITBRIDGE_USERNAME_KEY": ("sync", "username_key"),
}
_LIST_KEYS = {("webhooks", "secrets")}
# A config file is a few kilobytes (default.toml, with all its comments, is far below this): a bigger one is a
# wrong path (a log, a dump), and TOML is parsed whole, so it is refused before it fills the memory.
CONFIG_MAX_BYTES = 1 << 20


class ConfigError(CreditbridgeError):
    """The configuration file or an override is wrong; the message names the key at fault."""


def default_config_text() -> str:
    return resources.files("creditbridge.settings").joinpath("default.toml").read_text(encoding="utf-8")


def _config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    local = Path("creditbridge.toml")
    return local if local.exists() else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        # O_NONBLOCK: the open of a FIFO does not wait for a writer; the type is checked on the open descriptor,
        # so the file read is the file checked.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {file}") from e
    except OSError as e:  # a path through a file, a name too long, no permission
        raise ConfigError(f"config file {file}: cannot be read: {e.strerror or type(e).__name__}") from e
    try:
        what = not_regular(os.fstat(fd).st_mode)
        if what is not None:
            raise ConfigError(f"config file {file}: is {what}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(CONFIG_MAX_BYTES + 1)  # bounded, not st_size: the file may grow while it is read
    finally:
        os.close(fd)
    if len(raw) > CONFIG_MAX_BYTES:
        raise ConfigError(f"config file {file}: larger than {CONFIG_MAX_BYTES >> 20} MB; a config file is a few "
                          "kilobytes: check the path")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{file}: line {line}, column {column}: not UTF-8 text "
                          f"(byte 0x{raw[e.start]:02x}); save the file as UTF-8") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from e


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Settings from `path` (or $CREDITBRIDGE_CONFIG, or ./creditbridge.toml), then env, then overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    file = _config_path(path, env)
    if file is not None:
        data = _read_toml(file)
    for var, (section, key) in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        parsed: Any = [s.strip() for s in value.split(",") if s.strip()] if (section, key) in _LIST_KEYS else value
        data.setdefault(section, {})[key] = parsed
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors(include_input=False)
        )
        where = f"{file}: " if file else ""
        raise ConfigError(f"{where}{problems}") from e
