"""Entry point. Each flow owns its commands in its own `commands.py`; this only assembles them."""

from __future__ import annotations

import inspect
import logging
import sys

import click

from creditbridge import CreditbridgeError, __version__
from creditbridge.cli import setup
from creditbridge.cli.context import AppContext
from creditbridge.connector import commands as connector_commands
from creditbridge.logs import FORMATS, LogFormat, use_format
from creditbridge.mappings import commands as mappings_commands
from creditbridge.outbox import commands as outbox_commands
from creditbridge.quickstart import commands as quickstart_commands
from creditbridge.redact import install_excepthooks, install_log_redaction, printable
from creditbridge.registry_sim import commands as registry_sim_commands
from creditbridge.reports import commands as reports_commands
from creditbridge.runner import commands as runner_commands
from creditbridge.sandbox import commands as sandbox_commands
from creditbridge.sync import commands as sync_commands
from creditbridge.webhooks import commands as webhooks_commands

# Each flow's list of click commands, in the order `--help` lists them. Every flow is always installed: a
# failing import is a bug and stops the CLI loudly.
COMMAND_MODULES = [setup, connector_commands, sandbox_commands, sync_commands, webhooks_commands,
                   mappings_commands, outbox_commands, registry_sim_commands, reports_commands, runner_commands,
                   quickstart_commands]


class CreditbridgeGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CreditbridgeError as e:
            # Messages may quote a Moodle site or a sender: control characters escaped, ID numbers masked.
            click.echo(f"error: {printable(e, keep_newlines=True)}", err=True)
            ctx.exit(2)


@click.group(cls=CreditbridgeGroup)
@click.version_option(__version__, prog_name="creditbridge")
@click.option("--config", "config_path", envvar="CREDITBRIDGE_CONFIG", type=click.Path(dir_okay=False),
              help="Settings file (TOML). Default: $CREDITBRIDGE_CONFIG, then ./creditbridge.toml.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--log-format", type=click.Choice(FORMATS), default=None,
              help="Log lines as text or JSON objects (one a line). Default: logging.format (serve, run, "
                   "scheduler), else text.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, log_format: LogFormat | None) -> None:
    """creditbridge: Moodle ⇄ provincial teacher continuing-education credit registry."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # urllib3 warns on every connect retry; the transport reports the outcome in one line of its own.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    install_log_redaction()  # no ID number or URL password in any log line, whatever logged it
    if log_format is not None:
        use_format(log_format)
    app = AppContext(config_path=config_path, log_format_option=log_format)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    for module in COMMAND_MODULES:
        for command in module.COMMANDS:
            _summarise(command)
            cli.add_command(command)


def _summarise(command: click.Command) -> None:
    """List each command in --help by its whole first sentence (wrapped), not click's 45-character cut."""
    if command.short_help is None and command.help:
        paragraph = inspect.cleandoc(command.help).split("\n\n", 1)[0].replace("\n", " ")
        command.short_help = paragraph.partition(". ")[0].rstrip(".")
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _summarise(sub)


_register()


def main() -> None:
    install_excepthooks()  # a traceback nobody expected still prints no ID number
    cli(prog_name="creditbridge")


if __name__ == "__main__":
    main()
