"""`creditbridge intake ...` and `creditbridge serve`."""

from __future__ import annotations

import os
import resource
import shlex
import sys
from pathlib import Path

import click
from sqlalchemy import func, select

from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.logs import FORMAT_ENV
from creditbridge.metrics import MULTIPROC_ENV, OWNED_DIR_ENV, new_multiproc_dir
from creditbridge.outbox.status import status as credit_status
from creditbridge.redact import printable
from creditbridge.settings.load import ConfigError
from creditbridge.settings.model import WebhookSettings
from creditbridge.store.models.core import LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.counters import read_all, split_outcomes
from creditbridge.webhooks.importer import import_file
from creditbridge.webhooks.processing import Failure, list_parked, process_pending


@click.group("intake")
def intake_group() -> None:
    """Completion intake: webhook inbox, parked events, reconciliation, record import."""


@intake_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def status_command(app: AppContext, as_json: bool) -> None:
    """Counts: received deliveries, duplicates, refused requests by reason, learning records, parked events,
    deliveries rejected after max_attempts. Refused requests are as of each worker's last counter flush."""
    store = app.store
    counters = read_all(store)
    with store.session() as s:
        received = s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0
        by_state = dict(s.execute(select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)).all())
        records = s.scalar(select(func.count()).select_from(LearningRecordRow)) or 0
    rejected, not_creditable = split_outcomes(counters)
    doc = {"received": received, "duplicates": counters.get("duplicate", 0), "rejected": sum(rejected.values()),
           "rejected_by_reason": rejected, "records": records, "parked": by_state.get("parked", 0),
           "pending": by_state.get("pending", 0), "rejected_deliveries": by_state.get("rejected", 0),
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
@click.option("--rejected", "only_rejected", is_flag=True,
              help="Only the deliveries rejected after webhooks.max_attempts.")
@pass_app
def parked_command(app: AppContext, as_json: bool, only_rejected: bool) -> None:
    """List parked deliveries (waiting for a user or course to be synced, or failing) and rejected ones (failed
    webhooks.max_attempts times, no longer retried), with the reason."""
    rows = list_parked(app.store, ("rejected",) if only_rejected else ("parked", "rejected"))
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no rejected deliveries" if only_rejected else "no parked events")
    for r in rows:
        # The reason quotes the sender's username and course idnumber: printable() escapes terminal controls.
        click.echo(f"{r['parked_at']}  {r['state']:<8} {r['event']:<28} {printable(r['webhook_id'])}  "
                   f"{printable(r['reason'])} "
                   f"(tried {r['attempts']}x)")


@intake_group.command("replay")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--include-rejected", is_flag=True,
              help="Also retry deliveries rejected after webhooks.max_attempts (e.g. after a fix).")
@pass_app
def replay_command(app: AppContext, as_json: bool, include_rejected: bool) -> None:
    """Process pending deliveries and retry parked ones now; one line per delivery that failed, with its reason."""
    failures: list[Failure] = []
    out = process_pending(app.settings, app.store, include_rejected=include_rejected, failures=failures).as_json()
    if as_json:
        emit_json({**out, "failed": failures})
        return
    click.echo(", ".join(f"{k}: {v}" for k, v in out.items()))
    for f in failures:
        tried = f"rejected after {f['attempts']} attempts" if f["state"] == "rejected" else (
            f"parked, attempt {f['attempts']}")
        click.echo(f"  {printable(f['webhook_id'])}  {tried}: {printable(f['reason'])}")


@intake_group.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def reconcile_command(app: AppContext, as_json: bool) -> None:
    """Ask Moodle for course completions of enrolled teachers; record what a webhook missed."""
    # Only this command calls Moodle: the client (requests, urllib3) loaded with the module would add about a tenth
    # to the start-up of `serve` and of every other intake command (measured, issue #17).
    from creditbridge.connector.moodle import MoodleClient  # noqa: PLC0415
    from creditbridge.webhooks.reconcile import reconcile  # noqa: PLC0415

    with MoodleClient(app.settings.moodle) as client:
        out = reconcile(app.settings, app.store, client).as_json()
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
    out = import_file(app.settings, app.store, file)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"stored {out['stored']}, already known {out['duplicates']}, "
                   f"bad {len(out['errors']) + out['errors_omitted']}")
        for e in out["errors"]:
            click.echo(f"  line {e['line']}: {e['field']}: {e['reason']}", err=True)
        if out["errors_omitted"]:
            click.echo(f"  … and {out['errors_omitted']} more errors, not listed (limits.max_errors)", err=True)
    if out["errors"]:
        sys.exit(1)


# gunicorn's server hooks (metrics' multiprocess directory) and logger (log format, masking): webhooks/gunicorn_conf.py.
GUNICORN_CONFIG = "python:creditbridge.webhooks.gunicorn_conf"
# --worker-class for webhooks.worker_class = "gevent": gunicorn's gevent worker, quiet on Ctrl-C (see that module;
# named, not imported: gevent stays out of the CLI process).
GEVENT_WORKER = "creditbridge.webhooks.gunicorn_worker.QuietGeventWorker"


def gunicorn_argv(settings: WebhookSettings, app_path: str = "creditbridge.webhooks.wsgi:app", *,
                  host: str | None = None, port: int | None = None, workers: int | None = None,
                  worker_class: str | None = None, threads: int | None = None,
                  metrics_bind: str | None = None) -> list[str]:
    """The gunicorn command line for these settings; the benchmark serves its bare baseline with the same one.
    `metrics_bind` ("host:port") adds the metrics port as a second address (metrics.py MetricsPort)."""
    kind = worker_class or settings.worker_class
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG,
            "--bind", f"{host or settings.host}:{port or settings.port}",
            *(["--bind", metrics_bind] if metrics_bind else []),
            "--workers", str(workers or settings.workers),
            "--worker-class", GEVENT_WORKER if kind == "gevent" else kind,
            "--keep-alive", str(settings.keepalive_seconds)]
    if kind == "gthread":
        argv += ["--threads", str(threads or settings.threads)]
    elif kind == "gevent":
        argv += ["--worker-connections", str(settings.worker_connections)]
    if settings.access_log:
        argv += ["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT]
    return [*argv, app_path]


# gunicorn's default access-log line plus the X-Forwarded-For header: behind the reverse proxy (deploy/nginx)
# every request comes from 127.0.0.1, and the header, which nginx overwrites, names the real sender.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" "%({x-forwarded-for}i)s"'
# Open files a worker needs besides its connections: the listening socket, database pool, logs, pipes.
FD_HEADROOM = 128


def ensure_open_files(settings: WebhookSettings) -> int:
    """Raise this process's soft open-files limit (inherited by gunicorn and its workers) so that a gevent
    worker can hold `worker_connections` connections; the limit now in force. Past the limit a worker's accept()
    fails with EMFILE instead of the worker simply stopping to accept at worker_connections."""
    needed = settings.worker_connections + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(f"webhooks.worker_connections = {settings.worker_connections} needs {needed} open files "
                          f"per worker, but the hard limit (ulimit -Hn) is {hard}: lower worker_connections "
                          f"or raise the limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


@click.command("serve")
@click.option("--host", default=None, help="Default: webhooks.host (127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: webhooks.port (8080).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes. Default: webhooks.workers.")
@click.option("--worker-class", type=click.Choice(["gevent", "gthread", "sync"]), default=None,
              help="gunicorn worker class. Default: webhooks.worker_class (gevent).")
@click.option("--threads", type=int, default=None, help="Threads per gthread worker. Default: webhooks.threads.")
@click.option("--print-command", is_flag=True, help="Print the gunicorn command line instead of running it.")
@pass_app
def serve_command(app: AppContext, host: str | None, port: int | None, workers: int | None,
                  worker_class: str | None, threads: int | None, print_command: bool) -> None:
    """Run the webhook receiver under gunicorn (and GET /metrics on metrics.port when set)."""
    metrics = app.settings.metrics
    if metrics.port and metrics.port == (port or app.settings.webhooks.port):
        raise ConfigError(f"metrics.port = {metrics.port} is the webhook port: give the metrics a port of their "
                          "own (the webhook port must not serve /metrics)")
    argv = gunicorn_argv(app.settings.webhooks, host=host, port=port, workers=workers,
                         worker_class=worker_class, threads=threads,
                         metrics_bind=f"{metrics.host}:{metrics.port}" if metrics.port else None)
    if print_command:
        click.echo(shlex.join(argv))
        return
    if (worker_class or app.settings.webhooks.worker_class) == "gevent":
        ensure_open_files(app.settings.webhooks)
    app.store  # noqa: B018 - migrate once here, not in every worker at the same time
    app.close()
    env = dict(os.environ, CREDITBRIDGE_MIGRATED="1")
    env[FORMAT_ENV] = app.log_format
    env.pop(MULTIPROC_ENV, None)  # never another program's directory: counts of ours only
    if metrics.port:
        # Private (0700) and empty: this start's workers' counters (prometheus-client multiprocess mode).
        env[MULTIPROC_ENV] = env[OWNED_DIR_ENV] = new_multiproc_dir()
    if app.config_path:
        env["CREDITBRIDGE_CONFIG"] = str(Path(app.config_path).resolve())
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replace this process so signals reach gunicorn


COMMANDS = [intake_group, serve_command]
