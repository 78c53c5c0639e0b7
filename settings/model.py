"""The settings schema. Every field has a sane default so the embedded setup needs no file."""

from __future__ import annotations

import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from standardwebhooks.webhooks import Webhook


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true as 1 and false as 0: a TOML `timeout = true` is a mistake, not a number.
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in (int, float):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


class MoodleSettings(_Section):
    url: str = "http://127.0.0.1:8765"
    token: SecretStr = SecretStr("")
    # Bounded and finite: requests turns an infinite or huge timeout into an OverflowError deep in the socket code.
    timeout_seconds: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    connect_timeout_seconds: float = Field(5.0, gt=0, le=600, allow_inf_nan=False)
    retries: int = Field(3, ge=0, le=10)
    backoff_seconds: float = Field(0.5, ge=0, le=600, allow_inf_nan=False)
    batch_size: int = Field(100, ge=1, le=500)
    # Bulk-write calls sync apply keeps in flight at once (a site serves several PHP requests at a time); lowered
    # for a while on HTTP 429/503 or rising latency. 4: measured against `sandbox --cost real` (BENCHMARKS.md).
    concurrency: int = Field(4, ge=1, le=32)
    # Moodle's user-facing format is JSON; XML is still parsed for sites that force it.
    format: str = Field("json", pattern="^(json|xml)$")


class DatabaseSettings(_Section):
    url: str = "sqlite:///creditbridge.db"


class SyncSettings(_Section):
    programme: str = "sd-2022"
    # "idnumber": the username is derived from a hash of the ID number, so the ID number itself never
    # reaches Moodle; "teacher_code" uses the optional 教师编号 column.
    username_policy: str = Field("hashed_id", pattern="^(hashed_id|teacher_code)$")
    username_prefix: str = "t"
    auth: str = "manual"
    send_id_number: bool = False
    email_domain: str = "teachers.invalid"
    suspend_threshold: float = Field(0.10, ge=0, le=1)
    header_map: dict[str, str] = Field(default_factory=dict)
    report_dir: str = "creditbridge-data/reports"
    # Key of the username hash (policy hashed_id). Changing it renames nobody but breaks adoption of
    # existing accounts, so set it once before the first sync. Empty is refused by every command that
    # names accounts (sync.moodle_users.require_username_key): the hash would be invertible.
    username_key: SecretStr = SecretStr("")
    # true: Moodle generates and mails each new account a password; false: a random one is set (SSO sites).
    create_password: bool = False
    country: str = "CN"
    timezone: str = "Asia/Shanghai"
    # Logical field -> the custom user profile field's shortname on the site.
    profile_fields: dict[str, str] = Field(default_factory=lambda: {
        "schoolcode": "schoolcode", "school": "school", "county": "county", "city": "city",
        "stage": "stage", "subject": "subject", "rural": "rural"})
    # Stage code -> the option text of the site's `stage` menu profile field.
    stage_labels: dict[str, str] = Field(default_factory=lambda: {
        "kindergarten": "Early years", "primary": "Primary", "middle": "Secondary", "high": "Upper secondary"})
    # Course custom field (number) that carries the catalog hours.
    hours_field: str = "credit_hours"
    student_role_id: int = Field(5, ge=1)
    # How teachers get their electives (docs/sync.md "Enrolment policy"): "self" opens each elective by
    # enrol_self limited to the cohort of the teachers it is meant for (needs local_creditbridge's
    # configure_enrolment); "manual" enrols every teacher in every elective meant for them (one call each).
    electives: str = Field("self", pattern="^(self|manual)$")


class WebhookSettings(_Section):
    # Several secrets are accepted at once so a secret can be rotated without dropping deliveries.
    secrets: list[SecretStr] = Field(default_factory=list)

    @field_validator("secrets")
    @classmethod
    def _signing_keys(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        # Standard Webhooks keys are base64 (optionally `whsec_`-prefixed): one the library cannot decode would
        # stop every receiver worker at start-up with a traceback, so it is refused here, by position, unshown.
        for n, secret in enumerate(secrets, start=1):
            value = secret.get_secret_value()
            try:
                if value:
                    Webhook(value)
            except (ValueError, binascii.Error):
                raise ValueError(f"secret {n} is not a Standard Webhooks key (whsec_ and base64, e.g. "
                                 "`whsec_$(openssl rand -base64 24)`)") from None
        return secrets
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Never empty: gunicorn reads `--bind :8080` as every interface, which would expose the receiver.
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(2, ge=1)
    # gevent (the default) serves each request in a greenlet: a worker waiting on its database commit goes on
    # with other requests without an OS thread switch, which made it the fastest on 2 cores (BENCHMARKS.md).
    # gthread keeps connections alive with `threads` OS threads per worker; sync serves one request per worker
    # and closes the connection after each answer.
    worker_class: Literal["gevent", "gthread", "sync"] = "gevent"
    threads: int = Field(4, ge=1, le=64)
    # Concurrent connections per gevent worker (gunicorn's --worker-connections); past it a worker stops
    # accepting. An idle connection costs ~13 KB, and 2 x 1000 let 2,000 idle connections stall every delivery
    # until the keep-alive closed them; `serve` raises the open-files limit to this + 128 (docs/webhooks.md).
    worker_connections: int = Field(2000, ge=1, le=10_000)
    # Idle keep-alive connections close after this; under gevent it is also the deadline for each request's
    # line and headers (gunicorn reads them inside a timer of this length), so 0 (no timer) is refused.
    keepalive_seconds: int = Field(5, ge=1, le=300)
    # Deadline for a delivery's whole body under gevent workers: a slower sender gets 408 `read_timeout`.
    read_timeout_seconds: float = Field(10.0, gt=0, le=300, allow_inf_nan=False)
    access_log: bool = True
    # Group commit: the deliveries that reach a worker while it is writing are stored together, with one
    # INSERT and one commit, at most this many at a time (1: one commit per delivery). No timer: a delivery
    # arriving while nothing is being written is written at once.
    store_batch: int = Field(64, ge=1, le=1000)
    # Turn each delivery into a learning record right after its commit; false leaves it to `intake replay`
    # (or the scheduler), which makes the receiver faster under load.
    process_inline: bool = True
    # "background": a per-worker thread processes after the answer (the delivery is committed first, so a crash
    # leaves it pending for `intake replay` and the scheduler, never lost); "request": process before answering,
    # so the record exists when the sender gets its 2xx, at ~1/10 of the receiver's rate (docs/webhooks.md).
    inline_mode: Literal["request", "background"] = "background"
    # Deliveries waiting for the background thread, per worker; past this they wait for `intake replay`.
    background_queue: int = Field(10_000, ge=1)
    # Refused requests are counted in each worker's memory and added to the store (intake_counter) this often
    # and when the worker stops, so junk costs no database write per request (docs/webhooks.md).
    counter_flush_seconds: float = Field(5.0, gt=0, le=3600)
    # A delivery whose processing fails on the delivery itself (a payload that no longer validates, a value the
    # database refuses) is tried this many times, then becomes `rejected` and is no longer retried.
    # Deliveries waiting for a user or course to be synced are not limited.
    max_attempts: int = Field(10, ge=1, le=1000)


class RegistrySettings(_Section):
    target: str = "rest"
    url: str = "http://127.0.0.1:8770"
    key_id: str = "creditbridge"
    secret: SecretStr = SecretStr("")
    batch_size: int = Field(200, ge=1, le=10_000)
    timeout_seconds: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    # Resends of one batch after a retryable failure; each waits up to the policy's cap (connector/retry.py),
    # so an unbounded count would hold a push (and its lock) for ever.
    retries: int = Field(5, ge=0, le=20)
    provider: str = "creditbridge"
    export_dir: str = "creditbridge-data/exports"
    file_format: str = Field("xlsx", pattern="^(xlsx|csv)$")
    backoff_seconds: float = Field(0.5, ge=0, le=600, allow_inf_nan=False)
    lrs_username: str = ""
    lrs_password: SecretStr = SecretStr("")


class SchedulerSettings(_Section):
    timezone: str = "Asia/Shanghai"
    roster_sync: str = "0 2 * * *"
    catalog_sync: str = "30 1 * * *"
    reconcile: str = "0 */4 * * *"
    evaluate: str = "30 */4 * * *"
    push: str = "0 5 * * *"
    roster_file: str = ""
    catalog_file: str = ""
    misfire_grace_seconds: int = Field(3600, ge=1)
    deadline_warning_days: int = Field(14, ge=0)
    deadline_warning: str = "0 8 * * *"
    # A standby instance tries to become the active scheduler this often.
    standby_retry_seconds: float = Field(5.0, gt=0)
    # The active instance checks that it still holds its lock this often; it stops scheduling when not.
    lock_check_seconds: float = Field(10.0, gt=0)
    # SQLite only: the lock file that keeps one active scheduler per host (default: next to the database).
    lock_file: str = ""
    # Threads running jobs; jobs of different ids may overlap, one id never runs twice at once.
    # Jobs running at once (one job never overlaps itself). Each running job holds a database connection for its
    # job lock beside those of its work: more threads than jobs only drain the connection pool.
    max_workers: int = Field(4, ge=1, le=8)
    # Continuous mode only (pipeline.mode): the nightly full evaluation (`credits evaluate --all`); the
    # `evaluate` job then evaluates only what the workers left marked. Skipped in scheduled mode.
    evaluate_all: str = "0 3 * * *"


class PipelineSettings(_Section):
    """How results reach the registry (docs/scheduler.md). "scheduled": the `evaluate` and `push` jobs of the
    scheduler. "continuous": `creditbridge run` also keeps a worker that evaluates marked teachers as they come
    and pushes changed results in micro-batches, the scheduled jobs staying as the safety net. The default
    stays "scheduled" so an upgraded site does not start pushing during the day unannounced; `creditbridge init`
    and the quickstart write "continuous"."""

    mode: Literal["scheduled", "continuous"] = "scheduled"
    # Marked teachers one worker evaluates in one transaction (claims held for that long).
    batch_teachers: int = Field(200, ge=1, le=5000)
    # Results one worker sends in one micro-batch (also bounded by registry.batch_size).
    push_batch: int = Field(200, ge=1, le=1000)
    # An idle worker looks for work this often (SQLite: its only wake-up; PostgreSQL: besides NOTIFY).
    poll_seconds: float = Field(1.0, gt=0, le=60, allow_inf_nan=False)
    # After a failure (registry down, database gone) the worker waits from this, doubling up to max.
    backoff_seconds: float = Field(0.5, gt=0, le=60, allow_inf_nan=False)
    max_backoff_seconds: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    # How often a worker checks for what needs a whole-programme pass (rule file or catalog changed,
    # a topic change of a school) and runs it.
    check_seconds: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    # A delivery still pending this long after it was stored (the receiver's queue was full, its background batch
    # failed, its worker died) is turned into a learning record by a worker. Longer than the receivers' own
    # background processing normally takes, so the worker does not race them for fresh deliveries.
    pending_after_seconds: float = Field(10.0, ge=0, le=86400, allow_inf_nan=False)


class InputLimits(_Section):
    """What one input file (roster, catalog, topics, `intake import`, rule file) may cost: a hostile or broken
    file is refused with a clear error instead of eating the machine's memory and time."""

    # Characters in one spreadsheet cell (XLSX); longer is refused, naming the row and column. (CSV cells are
    # bounded by the csv module's field limit, 131,072 characters.)
    max_cell_chars: int = Field(10_000, ge=100)
    # Characters in one line of a JSON-lines file (`intake import`); a longer line is an error of that line.
    max_line_chars: int = Field(1_000_000, ge=1024)
    # Errors kept in detail per run (--json, the report, `sync runs`); the rest are counted in errors_omitted.
    max_errors: int = Field(1000, ge=1)
    # XLSX: the shared-strings part is read whole by the reader, so its uncompressed size is checked first.
    # Excel stores each distinct text once, ~30-40 bytes of XML apiece: ID number, name, e-mail, phone of a
    # 1,000,000-teacher roster come to roughly 100-150 MB (an estimate). Each string is also held to
    # max_cell_chars before the workbook is read.
    xlsx_shared_strings_mb: int = Field(256, ge=1)
    # XLSX: all parts together, uncompressed (a zip bomb's unpacked size).
    xlsx_uncompressed_mb: int = Field(2048, ge=1)
    # XLSX: cells of a sheet's rectangle from A1 to its last cell. The reader (python-calamine) holds that
    # rectangle in memory, 32 bytes a cell plus the text (~100 bytes a cell for a roster); a 1,000,000-teacher
    # roster of 13 columns is 13,000,000. Checked from the cell references before the sheet is read.
    xlsx_max_cells: int = Field(30_000_000, ge=1000)
    # XLSX: a workbook of at least this size (compressed, in MB) is unpacked in a child process capped in memory,
    # on the second core while this one runs the checks above (readers/xlsx.py); a smaller one in the process
    # itself, where it costs less than starting the child (~0.1 s). 0: every workbook in a child.
    xlsx_in_process_mb: int = Field(4, ge=0)
    # YAML catalogs are read whole; anchors and aliases are refused in any case.
    yaml_mb: int = Field(50, ge=1)


class ReportSettings(_Section):
    # Language of what people read: the credit report (HTML, XLSX), the sync run's XLSX, `credits explain`.
    # Simplified Chinese by default: the readers are school, county and city administrators (creditbridge.i18n).
    language: Literal["zh-CN", "en"] = "zh-CN"


class MetricsSettings(_Section):
    """Prometheus metrics (docs/operations.md). Off by default: an operator opens a port on purpose."""

    # Address of the metrics endpoints; loopback unless the monitoring scrapes from another host.
    # (Annotated, not Field(default): plain defaults keep the section constructible without arguments for mypy.)
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    # `creditbridge serve` (and `run`'s receiver) serves GET /metrics on this port, never on webhooks.port; 0: off.
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    # `creditbridge scheduler` (and `run`'s scheduler) serves GET /metrics on this port; 0: off.
    scheduler_port: Annotated[int, Field(ge=0, le=65535)] = 0
    # `creditbridge worker` (and `run`'s worker in continuous mode) serves GET /metrics on this port; 0: off.
    worker_port: Annotated[int, Field(ge=0, le=65535)] = 0
    # Figures read from the store (backlogs, inbox, job runs) are computed at most this often per process.
    cache_seconds: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 10.0


class LoggingSettings(_Section):
    # The long-running processes' log lines (serve incl. gunicorn's, run, scheduler): "text" or "json" (one
    # object per line). `--log-format` overrides it.
    format: Literal["text", "json"] = "text"


class Settings(_Section):
    moodle: MoodleSettings = Field(default_factory=MoodleSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    limits: InputLimits = Field(default_factory=InputLimits)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
