"""`creditbridge push`: send changed credit results to the configured registry target; and `creditbridge credits
status`, what waits for evaluation and for push (outbox/status.py)."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import Progress

from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app
from creditbridge.outbox.service import push
from creditbridge.outbox.status import status


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
        emit_json(result.as_json())
        if result.gave_up:
            sys.exit(2)  # the document says what stayed pending; the exit code tells a cron job it failed
        return
    if dry_run:
        click.echo(f"dry run: {result.would_send} submission(s) would be sent to {result.target} "
                   f"(new {result.built.created}, voids {result.built.voids})")
        return
    click.echo(f"sent {result.sent}, acknowledged {result.acknowledged}, rejected {result.rejected}, "
               f"pending {result.pending} (target {result.target})")
    if result.gave_up:
        click.echo("error: registry unavailable: the rest stays pending and is resent with the same keys next "
                   "time", err=True)
        sys.exit(2)


# `credits status`: the CLI adds it to the mappings flow's `credits` commands (cli/credits.py).
@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def status_command(app: AppContext, as_json: bool) -> None:
    """What waits: teachers marked for evaluation (per programme) and results waiting for push, with the age
    of the oldest of each."""
    doc = status(app.store)
    if as_json:
        emit_json(doc)
        return
    ev, outbox = doc["evaluation"], doc["push"]
    click.echo(f"waiting for evaluation: {ev['teachers']} teacher(s), oldest {_age(ev['oldest_age_seconds'])}")
    for code, p in ev["programmes"].items():
        whole = "; the whole programme (catalog changed)" if p["whole_programme"] else ""
        click.echo(f"  {code}: {p['teachers']} teacher(s), {p['schools']} school(s) whole{whole}, "
                   f"oldest {_age(p['oldest_age_seconds'])}")
    click.echo(f"waiting for push: {doc['waiting_push']} result(s), "
               f"oldest {_age(doc['waiting_push_oldest_age_seconds'])} "
               f"({outbox['to_build']} not yet in the outbox, {outbox['pending']} built and not sent); "
               f"{outbox['sent']} sent and not yet answered")


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f} s"


COMMANDS = [push_command]
