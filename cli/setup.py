"""`creditbridge init`: a commented default config and a ready state store."""

from __future__ import annotations

from pathlib import Path

import click

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.settings import default_config_text
from creditbridge.store.db import upgrade


@click.command("init")
@click.option("--path", "path", default="creditbridge.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the config file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing config file.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_app
def init_command(app: AppContext, path: str, overwrite: bool, as_json: bool) -> None:
    """Write a commented default config and create (or upgrade) the state store."""
    target = Path(path)
    wrote = False
    if target.exists() and not overwrite:
        if not as_json:
            click.echo(f"kept existing {target} (use --overwrite to replace it)")
    else:
        target.write_text(default_config_text(), encoding="utf-8")
        wrote = True
        if not as_json:
            click.echo(f"wrote {target}")
    if app.config_path is None:
        app.config_path = str(target)
    url = app.settings.database.url
    upgrade(url)
    if as_json:
        emit_json({"config": str(target), "config_written": wrote, "database": _safe_url(url)})
    else:
        click.echo(f"state store ready: {_safe_url(url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


COMMANDS = [init_command]
