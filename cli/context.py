"""What every command shares: the settings and the state store, both opened lazily."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click

from creditbridge.logs import LogFormat
from creditbridge.redact import json_for_screen
from creditbridge.settings import Settings, load_settings
from creditbridge.store import Store, open_store


@dataclass
class AppContext:
    config_path: str | None = None
    log_format_option: LogFormat | None = None  # the global --log-format, if given
    _settings: Settings | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database.url)
        return self._store

    @property
    def log_format(self) -> LogFormat:
        """--log-format, else the logging.format setting (what the long-running processes use)."""
        return self.log_format_option or self.settings.logging.format

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def emit_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else there. ID numbers in it are masked
    like everywhere else on screen: the store and the registry's import file are where full ones are."""
    click.echo(json_for_screen(obj, indent=2))


def interactive() -> bool:
    """Progress bars only for a person at a terminal."""
    return sys.stderr.isatty()
