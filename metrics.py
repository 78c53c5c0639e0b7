"""Prometheus metrics (the `prometheus-client` library): what an operator's monitoring scrapes (docs/operations.md).

Two kinds of figures:
- live counters kept by the process that counts: the receiver's answers (`creditbridge_webhook_deliveries_total`),
  incremented where the receiver counts each answer (webhooks/resources.py `count`). Under gunicorn they are in
  prometheus-client's multiprocess mode: `creditbridge serve` gives every start a private, empty
  PROMETHEUS_MULTIPROC_DIR (webhooks/gunicorn_conf.py) and any worker's scrape adds up all workers' files;
- figures that live in the state store (inbox, evaluation and push backlogs, registry rejections, the scheduler's
  run ledger), computed at scrape time by `StoreCollector` from the same functions `intake status`,
  `credits status` and `scheduler --list` use, cached for `metrics.cache_seconds` so a scrape never hammers
  the database: a handful of aggregate queries per process per interval, whatever the scrape rate.

Label values are bounded: outcome and reason codes of the receiver's own code, job ids, submission states. No ID
number, name or other text from outside ever becomes a label.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from creditbridge.outbox.status import status as credit_status
from creditbridge.store import Store
from creditbridge.store.job_ledger import JOB_IDS, last_run
from creditbridge.store.models.base import utcnow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.store.models.registry import SUBMISSION_STATES, RegistryAudit, RegistrySubmission

log = logging.getLogger(__name__)

PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set by `serve` to the directory it made itself, so gunicorn's hooks only ever empty or delete one of its own.
OWNED_DIR_ENV = "CREDITBRIDGE_METRICS_DIR"
# `serve`'s directories are named <prefix><pid of gunicorn's master>-<random>: serve execs into gunicorn, so the
# pid is the master's, and a directory whose master is gone (SIGKILLed: on_exit never ran) can be told apart.
DIR_PREFIX = "creditbridge-metrics-"
# Inbox states (models/intake.py): a state not listed is reported as "other".
INBOX_STATES = ("pending", "parked", "processed", "rejected")
# Longest query string passed to the library's app (it reads `name[]` filters from it); longer is refused.
MAX_QUERY = 2048


def new_multiproc_dir() -> str:
    """A private (0700), empty directory for one `serve` start's counters, in the temp directory. Directories of
    earlier starts whose master process is gone are removed first: only directories (never a symlink), owned by
    this user, named after a pid that no longer runs."""
    tmp = Path(tempfile.gettempdir())
    for found in tmp.glob(f"{DIR_PREFIX}*-*"):
        pid_text = found.name[len(DIR_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _running(int(pid_text)):
            continue
        try:
            st = found.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            shutil.rmtree(found, ignore_errors=True)
            log.info("removed the metrics directory of a serve that ended without cleaning up (pid %s)", pid_text)
    return tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it runs
    except OverflowError:
        return True  # no pid at all (anyone may name a directory so): not a serve's, left alone
    return True


DELIVERIES = Counter("creditbridge_webhook_deliveries", "Answers of the webhook receiver, by outcome and reason.",
                     ["outcome", "reason"])

# The receiver's reason codes are literals of its own code; this guards the label set anyway (a future reason
# built from outside text would otherwise grow the series without bound).
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_REASONS = 64
# Each reason's labelled counter, looked up once: labels() costs as much again as the increment itself.
_children: dict[str, Any] = {}
_children_lock = threading.Lock()


def outcome_of(reason: str) -> str:
    """The outcome class of a receiver answer: accepted, duplicate, failed (its own trouble) or refused."""
    if reason in ("accepted", "duplicate"):
        return reason
    return "failed" if reason == "store_error" else "refused"


def count_delivery(reason: str) -> None:
    """Count one receiver answer (called by webhooks/resources.py `count`, the one place answers are counted)."""
    child = _children.get(reason)
    if child is None:
        with _children_lock:
            bounded = bool(_REASON.fullmatch(reason)) and len(_children) < _MAX_REASONS
            label = reason if bounded else "other"
            child = _children.get(label) or DELIVERIES.labels(outcome=outcome_of(label), reason=label)
            _children[label] = child
    child.inc()


def _timestamp(at: Any) -> float:
    return float(at.timestamp()) if at is not None else 0.0


class StoreCollector(Collector):
    """The store's figures at scrape time, cached for `cache_seconds`; `creditbridge_store_up` 0 when the store
    cannot be read (the other store figures are then left out, not reported as zero)."""

    def __init__(self, store: Callable[[], Store], cache_seconds: float) -> None:
        self._store, self.cache_seconds = store, cache_seconds
        self._lock = threading.Lock()
        self._cached: list[Any] = []
        self._at = float("-inf")

    # Every family collect() yields, so the registry knows the names without a database query (the library's
    # `?name[]=...` filter and its duplicate-name check read them from describe()).
    NAMES = (("gauge", "creditbridge_store_up"), ("gauge", "creditbridge_store_scrape_duration_seconds"),
             ("gauge", "creditbridge_inbox_deliveries"), ("gauge", "creditbridge_inbox_oldest_pending_age_seconds"),
             ("gauge", "creditbridge_evaluation_backlog"),
             ("gauge", "creditbridge_evaluation_backlog_oldest_age_seconds"),
             ("gauge", "creditbridge_push_backlog"), ("gauge", "creditbridge_push_backlog_oldest_age_seconds"),
             ("gauge", "creditbridge_registry_submissions"), ("counter", "creditbridge_registry_rejections"),
             ("gauge", "creditbridge_scheduler_job_last_success_timestamp_seconds"),
             ("gauge", "creditbridge_scheduler_job_last_success_duration_seconds"),
             ("gauge", "creditbridge_scheduler_job_last_run_failed"))

    def describe(self) -> Iterator[Any]:
        for kind, name in self.NAMES:
            yield CounterMetricFamily(name, "") if kind == "counter" else GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[Any]:
        # One computation at a time: concurrent scrapes wait for it and share its result.
        with self._lock:
            if time.monotonic() - self._at >= self.cache_seconds:
                self._cached = self._compute()
                self._at = time.monotonic()
            families = list(self._cached)
        yield from families

    def _compute(self) -> list[Any]:
        started = time.monotonic()
        up = GaugeMetricFamily("creditbridge_store_up", "1 if the last read of the state store for metrics worked.")
        try:
            families = list(self._families(self._store()))
        except Exception as e:  # a scrape must answer even when the database does not
            log.warning("metrics: the state store could not be read: %s", type(e).__name__)
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        took = GaugeMetricFamily("creditbridge_store_scrape_duration_seconds",
                                 "Time the last computation of the store's figures took.")
        took.add_metric([], time.monotonic() - started)
        return [up, took, *families]

    def _families(self, store: Store) -> Iterable[Any]:
        yield from self._inbox(store)
        yield from self._backlogs(store)
        yield from self._registry(store)
        yield from self._jobs(store)

    @staticmethod
    def _inbox(store: Store) -> Iterable[Any]:
        with store.session() as s:
            by_state = dict(s.execute(select(WebhookDelivery.state, func.count())
                                      .group_by(WebhookDelivery.state)).all())
            oldest = s.scalar(select(func.min(WebhookDelivery.received_at))
                              .where(WebhookDelivery.state == "pending"))
        states = GaugeMetricFamily("creditbridge_inbox_deliveries", "Deliveries in the webhook inbox, by state.",
                                   labels=["state"])
        other = sum(n for state, n in by_state.items() if state not in INBOX_STATES)
        for state in INBOX_STATES:
            states.add_metric([state], by_state.get(state, 0))
        if other:
            states.add_metric(["other"], other)
        yield states
        age = GaugeMetricFamily("creditbridge_inbox_oldest_pending_age_seconds",
                                "Age of the oldest delivery waiting to be processed; 0 when none waits.")
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0)
        yield age

    @staticmethod
    def _backlogs(store: Store) -> Iterable[Any]:
        # The same figures as `credits status` and `intake status` (outbox/status.py, over mappings/marks.py).
        doc = credit_status(store)
        evaluation = GaugeMetricFamily("creditbridge_evaluation_backlog",
                                       "Teachers with learning records not yet evaluated.")
        evaluation.add_metric([], doc["waiting_evaluation"])
        yield evaluation
        evaluation_age = GaugeMetricFamily("creditbridge_evaluation_backlog_oldest_age_seconds",
                                           "Age of the oldest learning record waiting for evaluation; 0 when none.")
        evaluation_age.add_metric([], doc["waiting_evaluation_oldest_age_seconds"] or 0.0)
        yield evaluation_age
        push = doc["push"]
        backlog = GaugeMetricFamily("creditbridge_push_backlog",
                                    "Credit results waiting for the registry: to_build (not yet in the outbox), "
                                    "pending (built, not sent), sent (no answer yet).", labels=["stage"])
        backlog_age = GaugeMetricFamily("creditbridge_push_backlog_oldest_age_seconds",
                                        "Age of the oldest result waiting at each stage; 0 when none.",
                                        labels=["stage"])
        for stage in ("to_build", "pending", "sent"):
            backlog.add_metric([stage], push[stage])
            backlog_age.add_metric([stage], push[f"{stage}_oldest_age_seconds"] or 0.0)
        yield backlog
        yield backlog_age

    @staticmethod
    def _registry(store: Store) -> Iterable[Any]:
        with store.session() as s:
            by_state = dict(s.execute(select(RegistrySubmission.state, func.count())
                                      .group_by(RegistrySubmission.state)).all())
            rejections = s.scalar(select(func.count()).select_from(RegistryAudit)
                                  .where(RegistryAudit.to_state == "rejected")) or 0
        states = GaugeMetricFamily("creditbridge_registry_submissions",
                                   "Registry outbox submissions, by state.", labels=["state"])
        for state in SUBMISSION_STATES:
            states.add_metric([state], by_state.get(state, 0))
        yield states
        # The audit trail keeps every rejection, so this only grows: rate() over it shows rejections rising.
        total = CounterMetricFamily("creditbridge_registry_rejections",
                                    "Submissions the registry has rejected, ever (the outbox's audit trail).")
        total.add_metric([], rejections)
        yield total

    @staticmethod
    def _jobs(store: Store) -> Iterable[Any]:
        success = GaugeMetricFamily("creditbridge_scheduler_job_last_success_timestamp_seconds",
                                    "Unix time the job's last successful run finished; 0 if it never succeeded.",
                                    labels=["job"])
        duration = GaugeMetricFamily("creditbridge_scheduler_job_last_success_duration_seconds",
                                     "How long the job's last successful run took.", labels=["job"])
        failed = GaugeMetricFamily("creditbridge_scheduler_job_last_run_failed",
                                   "1 if the job's last finished run failed or was interrupted, else 0.",
                                   labels=["job"])
        for job in JOB_IDS:  # the scheduler's run ledger (scheduler.py), one home for "last run"
            ok = last_run(store, job, ("ok",))
            success.add_metric([job], _timestamp(ok.finished_at) if ok else 0.0)
            if ok is not None and ok.finished_at is not None:
                duration.add_metric([job], max(0.0, (ok.finished_at - ok.started_at).total_seconds()))
            last = last_run(store, job, ("ok", "skipped", "failed", "interrupted"))
            failed.add_metric([job], 1 if last is not None and last.outcome in ("failed", "interrupted") else 0)
        yield success
        yield duration
        yield failed


def build_registry(store: Callable[[], Store], cache_seconds: float) -> CollectorRegistry:
    """The registry a /metrics answer is made from: the live counters (every gunicorn worker's, in
    multiprocess mode) and the store's figures."""
    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(DELIVERIES)
    registry.register(StoreCollector(store, cache_seconds))
    return registry


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _plain(start_response: StartResponse, status: str, text: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(extra or [])])
    return [body]


def metrics_app(registry: CollectorRegistry) -> WsgiApp:
    """GET /metrics in the Prometheus text format (OpenMetrics when asked for); nothing else."""
    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != PATH:
            return _plain(start_response, "404 Not Found", "not found: metrics are at /metrics\n")
        if environ.get("REQUEST_METHOD") != "GET":
            return _plain(start_response, "405 Method Not Allowed", "metrics are read with GET\n",
                          [("Allow", "GET")])
        if len(environ.get("QUERY_STRING", "")) > MAX_QUERY:
            return _plain(start_response, "414 URI Too Long", f"query string over {MAX_QUERY} characters\n")
        return inner(environ, start_response)

    return app


class MetricsPort:
    """WSGI middleware serving `metrics` to requests that reached the metrics port and everything else to `app`:
    one gunicorn serves both ports (two --bind), and /metrics does not exist on the webhook port."""

    def __init__(self, app: WsgiApp, metrics: WsgiApp, port: int) -> None:
        self.app, self.metrics, self.port = app, metrics, str(port)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # gunicorn and werkzeug set SERVER_PORT to the port of the socket the request came in on.
        if environ.get("SERVER_PORT") == self.port:
            return self.metrics(environ, start_response)
        return self.app(environ, start_response)
