"""`creditbridge init`: a commented default config and a ready state store."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.settings import default_config_text
from creditbridge.settings.load import ConfigError
from creditbridge.settings.private import new_username_key, write_private_text
from creditbridge.store.db import open_store, safe_url

_EMPTY_USERNAME_KEY = re.compile(r'^username_key = ""$', re.MULTILINE)


def config_text() -> str:
    """The commented default config with a fresh random sync.username_key: usernames made with it cannot
    be turned back into ID numbers by anyone without the file."""
    text, n = _EMPTY_USERNAME_KEY.subn(f'username_key = "{new_username_key()}"', default_config_text())
    if n != 1:  # the template lost its line: never write a config whose usernames anybody can invert
        raise AssertionError("settings/default.toml has no `username_key = \"\"` line")
    return text


@click.command("init")
@click.option("--path", "path", type=click.Path(dir_okay=False),
              help="Where to write the config file. Default: the --config file, else ./creditbridge.toml.")
@click.option("--overwrite", is_flag=True, help="Replace an existing config file.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_app
def init_command(app: AppContext, path: str | None, overwrite: bool, as_json: bool) -> None:
    """Write a commented default config and create (or upgrade) the state store."""
    # `creditbridge --config x.toml init` writes x.toml: the file every later command will read.
    target = Path(path or app.config_path or "creditbridge.toml")
    wrote = False
    try:
        exists = target.exists()
        if not exists or overwrite:
            # 0600 from the start: the file holds the username key, and later the secrets an operator adds.
            write_private_text(target, config_text())
    except OSError as e:  # a path through a file, a name too long, no permission: `error: ...`, exit 2
        raise ConfigError(f"config file {target}: cannot be written: {e.strerror or type(e).__name__}") from e
    if exists and not overwrite:
        if not as_json:
            click.echo(f"kept existing {target} (use --overwrite to replace it)")
    else:
        wrote = True
        if not as_json:
            click.echo(f"wrote {target}")
    if app.config_path is None:
        app.config_path = str(target)
    url = app.settings.database.url
    open_store(url).dispose()  # runs the migrations; a bad URL becomes a StoreError (exit 2)
    sync = app.settings.sync
    if sync.username_policy == "hashed_id" and not sync.username_key.get_secret_value().strip():
        click.echo(f"warning: sync.username_key is empty in {target}: sync refuses to run until it is set "
                   "(docs/security.md)", err=True)
    # Files made before init wrote them 0600 keep their mode: say so rather than change an operator's choice.
    database = make_url(url).database if url.startswith("sqlite") else None
    for file in (target, Path(database) if database and database != ":memory:" else None):
        if file is not None and file.exists() and file.stat().st_mode & 0o077:
            click.echo(f"warning: {file} is readable by other users (mode {stat.S_IMODE(file.stat().st_mode):o}); "
                       f"it holds secrets or ID numbers: chmod 600 {file}", err=True)
    if as_json:
        emit_json({"config": str(target), "config_written": wrote, "database": safe_url(url)})
    else:
        click.echo(f"state store ready: {safe_url(url)}")


COMMANDS = [init_command]
