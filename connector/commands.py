"""`creditbridge moodle check` and `creditbridge moodle call`: the Moodle client from the command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.connector.encoding import decode_params
from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.connector.readiness import readiness_report
from creditbridge.redact import printable


@click.group("moodle")
def moodle_group() -> None:
    """Talk to the configured Moodle site's web services."""


def _fail(error: MoodleError, as_json: bool) -> None:
    if as_json:
        emit_json(error.as_json())
    else:
        code = f" [{error.errorcode}]" if error.errorcode else ""
        # The message and debuginfo are the site's text: printable() escapes terminal controls, masks ID numbers.
        click.echo(f"error: {printable(error.message)}{printable(code)}", err=True)
        if error.debuginfo:
            click.echo(f"debuginfo: {printable(error.debuginfo.strip(), keep_newlines=True)}", err=True)
    # 2 like every other creditbridge error; 1 stays `moodle check`'s "functions are missing" finding.
    sys.exit(2)


# `moodle check` exit codes: 0 ready, 1 not ready (a finding of severity error), 2 the site could not be asked.
NOT_READY = 1


@moodle_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout (findings as a list).")
@pass_app
def check_command(app: AppContext, as_json: bool) -> None:
    """Tell the site's readiness: the functions the token's service lacks and, through the plugin's
    readiness function, the token user's missing capabilities, missing profile and course custom fields,
    welcome messages of manual enrolment and whether the site may reach the receiver. Each finding names
    its fix.

    Exit code 0 when ready, 1 when not ready (any finding of severity error), 2 when the site cannot be
    asked (unreachable, wrong token, not Moodle).
    """
    with MoodleClient(app.settings.moodle) as client:
        try:
            report = readiness_report(client, app.settings.sync)
        except MoodleError as e:
            _fail(e, as_json)
            return
    if as_json:
        emit_json(report)
    else:
        _print_report(report)
    if not report["ready"]:
        sys.exit(NOT_READY)


def _print_report(report: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    # Names and messages come from the site: printable() escapes terminal controls and masks ID numbers.
    p = printable
    console.print(f"Site:    {p(report['sitename'])} ({p(report['url'])})", markup=False)
    console.print(f"Moodle:  {p(report['release'])} (version {p(report['version'])})", markup=False)
    user = report["user"]
    console.print(f"Token user: {p(user['username'])} ({p(user['fullname'])}, id {p(user['id'])})", markup=False)
    if report["ok"]:
        console.print(f"All {report['required']} functions creditbridge needs are in the service.")
    if report["plugin_version"]:
        console.print(f"Plugin local_creditbridge {report['plugin_version']}: readiness checked.")
    findings = report["findings"]
    if findings:
        errors = sum(1 for f in findings if f["severity"] == "error")
        table = Table(title=f"{errors} problem(s), {len(findings) - errors} warning(s)")
        for column in ("severity", "finding", "fix"):
            table.add_column(column)
        for f in findings:
            # Text, not markup: messages carry brackets and names from the site.
            table.add_row(f["severity"], Text(printable(f["message"])), Text(printable(f["fix"])))
        console.print(table)
    if not report["ready"]:
        console.print("Not ready: fix the problems above, then run this again.")
    elif not report["readiness_checked"]:
        console.print("No problem found, but the site's readiness could not be checked (see the warning).")
    else:
        console.print("Ready.")


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
