"""`creditbridge intake ...` and `creditbridge serve`."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click
from sqlalchemy import func, select

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.mappings.marks import status as credit_status
from creditbridge.settings.model import WebhookSettings
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import ParkedEvent, WebhookDelivery
from creditbridge.webhooks.counters import read_all, split_outcomes


@click.group("intake")
def intake_group() -> None:
    """Completion intake: webhook inbox, parked events, reconciliation, record import."""


@intake_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def status_command(app: AppContext, as_json: bool) -> None:
    """Counts: received deliveries, duplicates, rejected, learning records, parked events."""
    store = app.store
    counters = read_all(store)
    with store.session() as s:
        received = s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0
        pending = s.scalar(select(func.count()).select_from(WebhookDelivery)
                           .where(WebhookDelivery.state == "pending")) or 0
        records = s.scalar(select(func.count()).select_from(LearningRecordRow)) or 0
        parked = s.scalar(select(func.count()).select_from(ParkedEvent)) or 0
    rejected, not_creditable = split_outcomes(counters)
    doc = {"received": received, "duplicates": counters.get("duplicate", 0), "rejected": sum(rejected.values()),
           "rejected_by_reason": rejected, "records": records, "parked": parked, "pending": pending,
           "not_creditable": sum(not_creditable.values()), "not_creditable_by_reason": not_creditable}
    # what waits downstream of the inbox: the same figures as `credits status`
    doc.update({k: v for k, v in credit_status(store).items() if k.startswith("waiting_")})
    if as_json:
        emit_json(doc)
        return
    for k, v in doc.items():
        click.echo(f"{k:>20}: {v}")


@intake_group.command("parked")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def parked_command(app: AppContext, as_json: bool) -> None:
    """List events waiting for a user or course to be synced, with the reason."""
    from creditbridge.webhooks.processing import list_parked
    rows = list_parked(app.store)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no parked events")
    for r in rows:
        click.echo(f"{r['parked_at']}  {r['event']:<28} {r['webhook_id']}  {r['reason']} (tried {r['attempts']}x)")


@intake_group.command("replay")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def replay_command(app: AppContext, as_json: bool) -> None:
    """Process pending deliveries and retry parked ones now."""
    from creditbridge.webhooks.processing import process_pending
    out = process_pending(app.store, app.settings)
    if as_json:
        emit_json(out)
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in out.items()))


@intake_group.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def reconcile_command(app: AppContext, as_json: bool) -> None:
    """Ask Moodle for course completions of enrolled teachers; record what a webhook missed."""
    from creditbridge.connector.moodle import MoodleClient
    from creditbridge.webhooks.reconcile import reconcile
    with MoodleClient(app.settings.moodle) as client:
        out = reconcile(app.settings, app.store, client)
    if as_json:
        emit_json(out)
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in out.items()))


@intake_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def import_command(app: AppContext, file: Path, as_json: bool) -> None:
    """Import learning records: JSON lines (.jsonl/.json) or XLSX of school-based activity scores."""
    from creditbridge.webhooks.importer import import_file
    out = import_file(app.settings, app.store, file)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"stored {out['stored']}, already known {out['duplicates']}, bad {len(out['errors'])}")
        for e in out["errors"]:
            click.echo(f"  line {e['line']}: {e['field']}: {e['reason']}", err=True)
    if out["errors"]:
        sys.exit(1)


def gunicorn_argv(settings: WebhookSettings, app_path: str = "creditbridge.webhooks.wsgi:app", *,
                  host: str | None = None, port: int | None = None, workers: int | None = None,
                  worker_class: str | None = None, threads: int | None = None) -> list[str]:
    """The gunicorn command line for these settings; the benchmark serves its bare baseline with the same one."""
    kind = worker_class or settings.worker_class
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host or settings.host}:{port or settings.port}",
            "--workers", str(workers or settings.workers), "--worker-class", kind,
            "--keep-alive", str(settings.keepalive_seconds)]
    if kind == "gthread":
        argv += ["--threads", str(threads or settings.threads)]
    elif kind == "gevent":
        argv += ["--worker-connections", str(settings.worker_connections)]
    if settings.access_log:
        argv += ["--access-logfile", "-"]
    return [*argv, app_path]


@click.command("serve")
@click.option("--host", default=None, help="Default: webhooks.host (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: webhooks.port (8080).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes. Default: webhooks.workers.")
@click.option("--worker-class", type=click.Choice(["gevent", "gthread", "sync"]), default=None,
              help="gunicorn worker class. Default: webhooks.worker_class (gevent).")
@click.option("--threads", type=int, default=None, help="Threads per gthread worker. Default: webhooks.threads.")
@click.option("--print-command", is_flag=True, help="Print the gunicorn command line instead of running it.")
@pass_app
def serve_command(app: AppContext, host: str | None, port: int | None, workers: int | None,
                  worker_class: str | None, threads: int | None, print_command: bool) -> None:
    """Run the webhook receiver under gunicorn."""
    argv = gunicorn_argv(app.settings.webhooks, host=host, port=port, workers=workers,
                         worker_class=worker_class, threads=threads)
    if print_command:
        click.echo(shlex.join(argv))
        return
    app.store  # noqa: B018 - migrate once here, not in every worker at the same time
    app.close()
    env = dict(os.environ, CREDITBRIDGE_MIGRATED="1")
    if app.config_path:
        env["CREDITBRIDGE_CONFIG"] = str(Path(app.config_path).resolve())
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replace this process so signals reach gunicorn


COMMANDS = [intake_group, serve_command]
