"""Shared by the sync acceptance tests: roster files, settings pointing the CLI at the sandbox, a
fault-injecting Moodle client, and readers of what the sandbox holds."""

from __future__ import annotations

import csv
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from fixture_paths import fixture
from sqlalchemy import select

from creditbridge.cli.main import cli
from creditbridge.connector.errors import TransientError
from creditbridge.connector.moodle import MoodleClient
from creditbridge.records.id_number import check_digit
from creditbridge.settings import Settings, load_settings
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher

HEADERS = ["身份证号", "姓名", "学校代码", "学校名称", "区县", "地市", "学段", "学科", "是否乡村教师", "任职状态",
           "邮箱"]
SAMPLES = fixture("samples", "sd-2022")


def id_number(n: int, region: str = "370102", born: str = "19850101") -> str:
    first17 = f"{region}{born}{n % 1000:03d}"
    return first17 + check_digit(first17)


@dataclass(frozen=True)
class Person:
    id_number: str
    name: str
    school: str = "370102001"
    school_name: str = "济南市历下区第一中学"
    county: str = "历下区"
    city: str = "济南市"
    stage: str = "初中"
    subject: str = "数学"
    rural: str = "否"
    status: str = "在职"
    email: str = ""

    def cells(self) -> list[str]:
        return [self.id_number, self.name, self.school, self.school_name, self.county, self.city, self.stage,
                self.subject, self.rural, self.status, self.email]

    def moved(self, **changes: str) -> Person:
        return replace(self, **changes)


def people(n: int, start: int = 1, **common: str) -> list[Person]:
    return [Person(id_number(i), f"教师{i:03d}", **common) for i in range(start, start + n)]


def write_roster(path: Path, rows: Iterable[Person | Sequence[str]], *, encoding: str = "gb18030") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        for r in rows:
            w.writerow(r.cells() if isinstance(r, Person) else list(r))
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


CATALOG_HEADER = ["code", "title", "kind", "topic", "mode", "hours", "stage", "subject", "city", "recorded_by"]


@dataclass
class Env:
    """A config file + environment that point `creditbridge` at the sandbox and a fresh store."""

    config: Path
    env: dict[str, str]
    settings: Settings
    report_dir: Path

    def run(self, runner: CliRunner, *args: str) -> Result:
        return runner.invoke(cli, ["--config", str(self.config), *args], env=self.env, catch_exceptions=False)

    def sync(self, runner: CliRunner, kind: str, path: Path, *extra: str, expect: int = 0) -> dict[str, Any]:
        result = self.run(runner, "sync", kind, str(path), "--json", *extra)
        assert result.exit_code == expect, result.output
        return json.loads(result.stdout)


def make_env(tmp_path: Path, sandbox: Any, db_url: str, *, batch_size: int = 4, extra: str = "",
             concurrency: int | None = None) -> Env:
    report_dir = tmp_path / "reports"
    config = tmp_path / "creditbridge.toml"
    config.write_text(
        "[moodle]\n"
        f"batch_size = {batch_size}\nretries = 0\nbackoff_seconds = 0\n"
        + (f"concurrency = {concurrency}\n" if concurrency is not None else "") + "\n"
        "[sync]\n"
        f'report_dir = "{report_dir.as_posix()}"\n'
        'username_key = "test-key"\n' + extra,
        encoding="utf-8")
    env = {"CREDITBRIDGE_MOODLE_URL": sandbox.url, "CREDITBRIDGE_MOODLE_TOKEN": sandbox.token,
           "CREDITBRIDGE_DATABASE_URL": db_url}
    return Env(config, env, load_settings(config, env=env), report_dir)


def client_for(sandbox: Any) -> MoodleClient:
    return MoodleClient.from_url(sandbox.url, sandbox.token, batch_size=200, backoff_seconds=0, retries=0)


class Budget:
    """Write calls a run may still make, shared by the clients of its workers (moodle.concurrency above 1)."""

    def __init__(self, writes: int) -> None:
        self.left = writes
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class FailAfter(MoodleClient):
    """A real client that stops after `writes` successful write calls, the way an outage or a kill does.

    mode "outage": the next write fails before reaching Moodle (TransientError, retries exhausted).
    mode "crash": the next write reaches Moodle, then the process 'dies' (RuntimeError) before the
    answer is recorded, so Moodle has what the store does not know.
    `budget`: shared by every client of one run (a factory making one per worker); default: this client's own.
    """

    def __init__(self, settings: Any, *, writes: int = 0, mode: str = "outage", budget: Budget | None = None) -> None:
        super().__init__(settings)
        self.budget = budget or Budget(writes)
        self.mode = mode
        inner = self.transport.post

        def post(function: str, fields: Any, *, safe: bool = False) -> Any:
            from creditbridge.connector.functions import is_read

            if is_read(function):
                return inner(function, fields, safe=safe)
            if not self.budget.take():
                if self.mode == "crash":
                    inner(function, fields, safe=safe)
                    raise RuntimeError("killed after Moodle took the batch")
                err = TransientError("connection refused (injected)", function=function)
                err.exhausted = True
                raise err
            return inner(function, fields, safe=safe)

        self.transport.post = post  # type: ignore[method-assign]


def sandbox_users(client: MoodleClient, usernames: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {u["username"]: u for u in client.get_users_by_field("username", list(usernames))}


def custom(user: dict[str, Any], shortname: str) -> Any:
    for f in user.get("customfields", []) or []:
        if f.get("shortname") == shortname:
            return f.get("value")
    return None


def course_ids(client: MoodleClient, codes: Iterable[str]) -> dict[str, int]:
    out = {}
    for code in codes:
        found = client.get_courses_by_field("idnumber", code)
        if found:
            out[code] = int(found[0]["id"])
    return out


def enrolled_codes(client: MoodleClient, user_id: int) -> set[str]:
    return {c.get("idnumber") for c in client.get_users_courses(user_id)}


def admin_get(sandbox: Any, endpoint: str, **params: Any) -> Any:
    """GET one of the sandbox's admin endpoints over HTTP (what a tester's browser would ask)."""
    query = urllib.parse.urlencode({"wstoken": sandbox.token, **params})
    with urllib.request.urlopen(f"{sandbox.url}/sandbox/admin/{endpoint}?{query}", timeout=10) as r:  # noqa: S310
        return json.loads(r.read().decode())


def codes_by_id(sandbox: Any) -> dict[int, str]:
    courses = client_for(sandbox).call("core_course_get_courses_by_field")["courses"]
    return {int(c["id"]): c["idnumber"] for c in courses}


def open_codes(sandbox: Any, userid: int) -> set[str]:
    """The courses whose enrolment page shows the teacher "Enrol me" (cohort-restricted self enrolment)."""
    by_id = codes_by_id(sandbox)
    return {by_id[c] for c in admin_get(sandbox, "self_enrol_options", userid=userid)["courseids"]}


def stored_teachers(env: Env) -> dict[str, Teacher]:
    """The store's teachers of `env`, by ID number."""
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            return {t.id_number: t for t in s.scalars(select(Teacher))}
    finally:
        store.dispose()


# What a `creditbridge sync` child process (tests/cli_process.run_cli) may use: XLSX tests prove bounded memory.
CHILD_MEMORY_MB = 1024


def child_config(tmp_path: Path, extra: str = "") -> tuple[Path, dict[str, str]]:
    """A config file for a `creditbridge sync` child process (reports under tmp_path, a username key) and its
    environment (a SQLite store under tmp_path)."""
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(tmp_path / "reports").as_posix()}"\nusername_key = "k"\n{extra}',
                      encoding="utf-8")
    return config, {"CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}


# [limits] for a config whose every XLSX goes through the child process (readers/xlsx.py), however small; the
# default reads a file under 4 MB in the process itself. Combine with other limits in one [limits] table.
CHILD_PROCESS = "xlsx_in_process_mb = 0\n"
# Both ways of reading a workbook, for tests that must hold for each: the in-process reader is the reference.
XLSX_PATHS = {"in process": "", "child process": CHILD_PROCESS}

