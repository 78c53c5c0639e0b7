"""`creditbridge run` (receiver + scheduler, and in continuous mode a worker, supervised), `creditbridge
scheduler` (the scheduler process, or an operator's view of it: --list, --once JOB) and `creditbridge worker`
(the continuous worker alone: more of them on more hosts against one PostgreSQL store)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from creditbridge import scheduler
from creditbridge.cli.context import AppContext, emit_json, pass_app
from creditbridge.cli.http_server import ServerHandle, serve_in_thread
from creditbridge.logs import use_format
from creditbridge.metrics import PATH, build_registry, metrics_app
from creditbridge.runner.supervisor import Child, Supervisor
from creditbridge.runner.worker import Worker
from creditbridge.settings.load import ConfigError

log = logging.getLogger(__name__)


def _verbosity() -> list[str]:
    root = click.get_current_context().find_root()
    n = int(root.params.get("verbose") or 0)
    return ["-" + "v" * n] if n else []


def check_ports(app: AppContext, receiver_port: int | None) -> None:
    """ConfigError when two of the ports this host's processes listen on are one: the receiver's (`--port`, else
    webhooks.port), metrics.port, metrics.scheduler_port and metrics.worker_port. `run` checks before it starts a
    child: otherwise the scheduler, up first, served /metrics on the receiver's port and the supervisor restarted
    the receiver, which could not bind it, for ever."""
    metrics = app.settings.metrics
    ports = [("--port" if receiver_port else "webhooks.port", receiver_port or app.settings.webhooks.port),
             ("metrics.port", metrics.port), ("metrics.scheduler_port", metrics.scheduler_port),
             ("metrics.worker_port", metrics.worker_port)]
    seen: dict[int, str] = {}
    for name, port in ports:
        if port and port in seen:
            raise ConfigError(f"{name} = {port} is also {seen[port]}: give each its own port (metrics never share "
                              "the webhook port)")
        seen.setdefault(port, name)


def _serve_metrics(app: AppContext, setting: str) -> ServerHandle | None:
    """GET /metrics on metrics.<setting> (scheduler_port, worker_port) if set: the store's figures (job runs,
    backlogs, inbox), so a scheduler or worker host is watched without a receiver on it."""
    metrics = app.settings.metrics
    port = int(getattr(metrics, setting))
    if not port:
        return None
    check_ports(app, None)
    store = app.store  # opened (and migrated) here, once, not by the first scrape's thread
    registry = build_registry(lambda: store, metrics.cache_seconds)
    try:
        handle = serve_in_thread(metrics_app(registry), metrics.host, port, name="metrics")
    except OSError as e:
        raise ConfigError(f"metrics.{setting}: cannot listen on {metrics.host}:{port}: "
                          f"{e.strerror or type(e).__name__}") from e
    logging.getLogger(__name__).info("metrics at %s%s", handle.url, PATH)
    return handle


@click.command("run")
@click.option("--host", default=None, help="Receiver address. Default: webhooks.host.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Receiver port. Default: webhooks.port.")
@click.option("--workers", type=int, default=None, help="gunicorn workers. Default: webhooks.workers.")
@click.option("--stop-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the children after SIGTERM before killing them.")
@pass_app
def run_command(app: AppContext, host: str | None, port: int | None, workers: int | None,
                stop_timeout: float) -> None:
    """Run the webhook receiver (gunicorn) and the scheduler (and, with pipeline.mode = "continuous", the
    worker) as supervised processes until SIGTERM."""
    use_format(app.log_format)  # a bad config fails here, once, not in two children
    check_ports(app, port)
    app.store  # noqa: B018 - migrate before the children start, so they do not race to do it
    app.close()
    base = [sys.executable, "-m", "creditbridge.cli.main", *_verbosity(), "--log-format", app.log_format]
    env = dict(os.environ)
    if app.config_path:
        env["CREDITBRIDGE_CONFIG"] = str(Path(app.config_path).resolve())
    serve = [*base, "serve"]
    for flag, value in (("--host", host), ("--port", port), ("--workers", workers)):
        if value is not None:
            serve += [flag, str(value)]
    logging.getLogger("creditbridge").setLevel(min(logging.getLogger().level, logging.INFO))
    children = [Child("receiver", serve, env), Child("scheduler", [*base, "scheduler"], env)]
    if app.settings.pipeline.mode == "continuous":
        children.append(Child("worker", [*base, "worker"], env))
    code = Supervisor(children, stop_timeout=stop_timeout).run()
    sys.exit(code)


@click.command("scheduler")
@click.option("--list", "list_", is_flag=True, help="List the jobs with their next and last run, and exit.")
@click.option("--once", metavar="JOB", type=click.Choice(scheduler.JOB_IDS), default=None,
              help="Run one job now, and exit.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout (with --list or --once).")
@pass_app
def scheduler_command(app: AppContext, list_: bool, once: str | None, as_json: bool) -> None:
    """Run the scheduler (standby while another instance is active), or --list / --once JOB."""
    use_format(app.log_format)
    if list_:
        doc = scheduler.list_jobs(app.settings, app.store)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"time zone {doc['timezone']}; active scheduler: {doc['active_scheduler'] or 'none'}")
        for j in doc["jobs"]:
            last = j["last_run"]
            last_s = f"{last['outcome']} {last['started_at'][:19]}" if last else "never run"
            click.echo(f"{j['id']:<17} {j['cron']:<16} next {j['next_run'] or '-':<26} last {last_s}")
        return
    if once:
        result = scheduler.run_once(app.settings, app.store, once)
        if as_json:
            emit_json(result)
        else:
            counts = result["counts"] or {}
            click.echo(f"{once}: {result['outcome']}" + (f" ({result['error']})" if result["error"] else ""))
            for k, v in counts.items():
                click.echo(f"  {k}: {v}")
        if result["outcome"] == "failed":
            sys.exit(1)
        return
    logging.getLogger("creditbridge").setLevel(min(logging.getLogger().level, logging.INFO))
    server = _serve_metrics(app, "scheduler_port")
    try:
        scheduler.serve(app.settings, app.store)
    finally:
        if server is not None:
            server.stop()


@click.command("worker")
@click.option("--json", "as_json", is_flag=True, help="At the end, what the worker did as one JSON document.")
@pass_app
def worker_command(app: AppContext, as_json: bool) -> None:
    """Run one continuous worker until SIGTERM/Ctrl-C (it finishes the batch in hand): evaluate marked teachers
    as they come and push their changed results. Start more on more hosts against one PostgreSQL store."""
    use_format(app.log_format)
    worker = Worker(app.settings, app.store)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("worker: %s received, finishing the batch in hand", signal.Signals(signum).name)
        worker.stop()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    logging.getLogger("creditbridge").setLevel(min(logging.getLogger().level, logging.INFO))
    server = _serve_metrics(app, "worker_port")
    try:
        totals = worker.run()
    finally:
        if server is not None:
            server.stop()
    if as_json:
        emit_json(totals)


COMMANDS = [run_command, scheduler_command, worker_command]
