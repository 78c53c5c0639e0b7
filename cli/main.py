"""Entry point. Each flow owns its commands in its own `commands.py`; this only assembles them."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys

import click

from creditbridge import CreditbridgeError, __version__
from creditbridge.cli.context import AppContext
from creditbridge.logs import FORMATS, LogFormat, use_format
from creditbridge.redact import install_excepthooks, install_log_redaction, printable

# Each command and the flow module whose COMMANDS list holds it. A flow's module is imported when one of its
# commands is looked up (click's lazy loading of subcommands), not at start: `sync roster` then loads no web
# server, scheduler or PostgreSQL driver, a fifth of the CLI's start-up CPU (issue #15, the dry run of a
# province). Every flow is always installed: a failing import is a bug and stops the command loudly, and
# tests/cli/test_lazy_commands.py checks this table against every module's COMMANDS.
COMMAND_MODULES: dict[str, str] = {
    "init": "creditbridge.cli.setup",
    "moodle": "creditbridge.connector.commands",
    "sandbox": "creditbridge.sandbox.commands",
    "sync": "creditbridge.sync.commands",
    "intake": "creditbridge.webhooks.commands",
    "serve": "creditbridge.webhooks.commands",
    "rules": "creditbridge.mappings.commands",
    "credits": "creditbridge.cli.credits",  # the mappings flow's commands and `credits status`
    "push": "creditbridge.outbox.commands",
    "registry-sim": "creditbridge.registry_sim.commands",
    "report": "creditbridge.reports.commands",
    "run": "creditbridge.runner.commands",
    "scheduler": "creditbridge.runner.commands",
    "worker": "creditbridge.runner.commands",
    "quickstart": "creditbridge.quickstart.commands",
}


class CreditbridgeGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            _register(COMMAND_MODULES[cmd_name])
        return self.commands.get(cmd_name)

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


def _register(module_name: str) -> None:
    """Add the commands of a flow's module (its COMMANDS list) to the CLI."""
    for command in importlib.import_module(module_name).COMMANDS:
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


def main() -> None:
    install_excepthooks()  # a traceback nobody expected still prints no ID number
    cli(prog_name="creditbridge")


if __name__ == "__main__":
    main()
