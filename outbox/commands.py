"""`creditbridge push`: send changed credit results to the configured registry target."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import Progress

from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app
from creditbridge.outbox.service import push


@click.command("push")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing, send nothing.")
@click.option("--programme", default=None, help="Only this programme's results (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--wait", is_flag=True, help="If another push holds this store, wait for it to finish instead of "
              "stopping at once (exit 2).")
@pass_app
def push_command(app: AppContext, dry_run: bool, programme: str | None, as_json: bool, wait: bool) -> None:
    """Push credit records to the registry, exactly once each (resends reuse idempotency keys)."""
    if as_json or not interactive() or dry_run:
        result = push(app.settings, app.store, dry_run=dry_run, programme=programme, wait=wait)
    else:
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("pushing", total=None)
            result = push(app.settings, app.store, programme=programme, wait=wait,
                          on_batch=lambda n: bar.advance(task, n))
    if as_json:
        emit_json(result)
        if result.get("gave_up"):
            sys.exit(2)  # the document says what stayed pending; the exit code tells a cron job it failed
        return
    if dry_run:
        click.echo(f"dry run: {result['would_send']} submission(s) would be sent to {result['target']} "
                   f"(new {result['built']['created']}, voids {result['built']['voids']})")
        return
    click.echo(f"sent {result['sent']}, acknowledged {result['acknowledged']}, rejected {result['rejected']}, "
               f"pending {result['pending']} (target {result['target']})")
    if result.get("gave_up"):
        click.echo("error: registry unavailable: the rest stays pending and is resent with the same keys next "
                   "time", err=True)
        sys.exit(2)


COMMANDS = [push_command]
