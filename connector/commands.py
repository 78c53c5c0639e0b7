"""`creditbridge moodle check` and `creditbridge moodle call`: the Moodle client from the command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.connector.encoding import decode_params
from creditbridge.connector.errors import MoodleError
from creditbridge.connector.functions import REQUIRED_FUNCTIONS
from creditbridge.connector.moodle import MoodleClient
from creditbridge.redact import mask_url


@click.group("moodle")
def moodle_group() -> None:
    """Talk to the configured Moodle site's web services."""


def check_site(client: MoodleClient) -> dict[str, Any]:
    """Site info plus the required functions the token's service lacks."""
    info = client.get_site_info()
    available = {f["name"] for f in info.get("functions", [])}
    missing = [name for name in REQUIRED_FUNCTIONS if name not in available]
    return {
        "url": mask_url(client.settings.url),  # a password in the URL is never shown
        "sitename": info.get("sitename"),
        "release": info.get("release"),
        "version": info.get("version"),
        "user": {"id": info.get("userid"), "username": info.get("username"), "fullname": info.get("fullname")},
        "required": len(REQUIRED_FUNCTIONS),
        "missing": [{"function": name, "purpose": REQUIRED_FUNCTIONS[name]} for name in missing],
        "ok": not missing,
    }


def _fail(error: MoodleError, as_json: bool) -> None:
    if as_json:
        emit_json(error.as_json())
    else:
        code = f" [{error.errorcode}]" if error.errorcode else ""
        click.echo(f"error: {error.message}{code}", err=True)
        if error.debuginfo:
            click.echo(f"debuginfo: {error.debuginfo.strip()}", err=True)
    # 2 like every other creditbridge error; 1 stays `moodle check`'s "functions are missing" finding.
    sys.exit(2)


@moodle_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def check_command(app: AppContext, as_json: bool) -> None:
    """Show the site, its Moodle version, the token's user and the functions the service lacks.

    Exit code 1 when a function creditbridge needs is not in the token's service; 2 when the site
    cannot be asked (unreachable, wrong token, not Moodle).
    """
    with MoodleClient(app.settings.moodle) as client:
        try:
            report = check_site(client)
        except MoodleError as e:
            _fail(e, as_json)
            return
    if as_json:
        emit_json(report)
    else:
        console = Console(soft_wrap=True)
        console.print(f"Site:    {report['sitename']} ({report['url']})")
        console.print(f"Moodle:  {report['release']} (version {report['version']})")
        user = report["user"]
        console.print(f"Token user: {user['username']} ({user['fullname']}, id {user['id']})")
        if report["ok"]:
            console.print(f"All {report['required']} functions creditbridge needs are in the service.")
        else:
            table = Table(title=f"{len(report['missing'])} of {report['required']} required functions "
                                "missing from the token's service")
            table.add_column("function", no_wrap=True)
            table.add_column("needed to")
            for row in report["missing"]:
                table.add_row(row["function"], row["purpose"])
            console.print(table)
    if not report["ok"]:
        sys.exit(1)


@moodle_group.command("call")
@click.argument("function")
@click.argument("params", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print only the answer as JSON (errors as JSON too).")
@pass_app
def call_command(app: AppContext, function: str, params: tuple[str, ...], as_json: bool) -> None:
    """Call any web-service FUNCTION with name=value PARAMS (bracket notation: users[0][username]=x).

    Reads (get/search/view functions) are retried on transient errors; writes are sent once. Exit code 2
    when Moodle answers with an error.
    """
    fields: list[tuple[str, str]] = []
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{param!r} is not name=value", param_hint="PARAMS")
        if name.split("[")[0] in ("wstoken", "wsfunction", "moodlewsrestformat"):
            raise click.BadParameter(f"{name} is set by creditbridge", param_hint="PARAMS")
        fields.append((name, value))
    try:
        structure = decode_params(fields)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="PARAMS") from e
    with MoodleClient(app.settings.moodle) as client:
        try:
            answer = client.call_with(function, structure)
        except MoodleError as e:
            _fail(e, as_json)
            return
    if as_json:
        emit_json(answer)
    else:
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))


COMMANDS = [moodle_group]
