"""Entry point. Each flow owns its commands in its own `commands.py`; this only assembles them."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys

import click

from creditbridge import CreditbridgeError, __version__
from creditbridge.cli.context import AppContext
from creditbridge.redact import install_excepthooks, install_log_redaction, redact

# (module, attribute holding a list of click commands). Order is the order `--help` lists them in.
COMMAND_MODULES = [
    "creditbridge.cli.setup",
    "creditbridge.connector.commands",
    "creditbridge.sandbox.commands",
    "creditbridge.sync.commands",
    "creditbridge.webhooks.commands",
    "creditbridge.mappings.commands",
    "creditbridge.outbox.commands",
    "creditbridge.registry_sim.commands",
    "creditbridge.reports.commands",
    "creditbridge.runner.commands",
    "creditbridge.quickstart.commands",
]


class CreditbridgeGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CreditbridgeError as e:
            click.echo(f"error: {redact(str(e))}", err=True)
            ctx.exit(2)


@click.group(cls=CreditbridgeGroup)
@click.version_option(__version__, prog_name="creditbridge")
@click.option("--config", "config_path", envvar="CREDITBRIDGE_CONFIG", type=click.Path(dir_okay=False),
              help="Settings file (TOML). Default: $CREDITBRIDGE_CONFIG, then ./creditbridge.toml.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """creditbridge: Moodle ⇄ provincial teacher continuing-education credit registry."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # urllib3 warns on every connect retry; the transport reports the outcome in one line of its own.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    install_log_redaction()  # no ID number or URL password in any log line, whatever logged it
    app = AppContext(config_path=config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            # A flow not installed in this build; any other import failure is a real bug and surfaces.
            if e.name is not None and name.startswith(e.name):
                continue
            raise
        for command in getattr(module, "COMMANDS", []):
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
