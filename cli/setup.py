"""`creditbridge init`: a commented default config and a ready state store."""

from __future__ import annotations

from pathlib import Path

import click

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.settings import default_config_text
from creditbridge.settings.load import ConfigError
from creditbridge.store.db import open_store, safe_url


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
            target.write_text(default_config_text(), encoding="utf-8")
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
    if as_json:
        emit_json({"config": str(target), "config_written": wrote, "database": safe_url(url)})
    else:
        click.echo(f"state store ready: {safe_url(url)}")


COMMANDS = [init_command]
