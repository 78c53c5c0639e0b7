"""The xAPI target against a real Ralph LRS (its own venv, started here on 127.0.0.1).

Ralph lives in `.ralph-venv` (or $CREDITBRIDGE_RALPH_VENV), installed by .ci/run. Locally the test skips
when it is missing; in CI (CI=true) a missing Ralph fails the run instead of hiding the gap."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr
from registry_helpers import id_number, record

from creditbridge.connector.registry import Submission, load_target
from creditbridge.connector.registry.xapi import statement_id
from creditbridge.settings.model import RegistrySettings

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("CREDITBRIDGE_RALPH_VENV", ROOT / ".ralph-venv"))
RALPH = VENV / "bin" / "ralph"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
USER, PASSWORD = "creditbridge", "lrs-test-password"
HEADERS = {"X-Experience-API-Version": "1.0.3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ralph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not RALPH.exists():
        msg = f"Ralph LRS not installed at {RALPH} (python -m venv .ralph-venv && " \
              f".ralph-venv/bin/pip install 'ralph-malph[cli,lrs,backend-fs]' requests)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    home = tmp_path_factory.mktemp("ralph")
    env = {**os.environ, "RALPH_APP_DIR": str(home / "app"), "RALPH_RUNSERVER_BACKEND": "fs"}
    subprocess.run([str(RALPH), "auth", "-u", USER, "-p", PASSWORD, "-s", "all",
                    "-A", USER, "https://creditbridge.invalid", "-w"],
                   env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    log = (home / "ralph.log").open("wb")
    proc = subprocess.Popen([str(RALPH), "runserver", "-b", "fs", "-h", "127.0.0.1", "-p", str(port),
                             "--fs-default-directory-path", str(home / "data")],
                            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/__heartbeat__", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Ralph did not start: {(home / 'ralph.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # runserver's reloader has a child: stop the whole group
        proc.wait(timeout=20)
        log.close()


def _statements(url: str) -> list[dict]:
    r = requests.get(f"{url}/xAPI/statements", params={"limit": 500}, auth=(USER, PASSWORD), headers=HEADERS,
                     timeout=10)
    r.raise_for_status()
    return r.json()["statements"]


def test_statements_land_once_with_deterministic_ids(ralph: str) -> None:
    settings = RegistrySettings(target="xapi", url=ralph, lrs_username=USER, lrs_password=SecretStr(PASSWORD))
    target = load_target("xapi", settings)
    batch = [Submission(key=f"xapi-key-{n:04d}", action="submit",
                        record=record(n, evaluated_at="2022-12-01T08:00:00+00:00", credits=n % 4))
             for n in range(25)]
    # A withdrawn result: the voiding statement points at the statement of the version it withdraws.
    batch.append(Submission(key="xapi-key-0024-v2", action="void", supersedes="xapi-key-0024",
                            record=record(24, version=2, evaluated_at="2022-12-02T08:00:00+00:00")))
    first = target.submit(batch)
    assert {o.status for o in first} == {"acknowledged"}
    assert [o.registry_id for o in first] == [statement_id(s.key) for s in batch]
    # A resend after a lost answer (same keys, same content) is dropped by the LRS: nothing doubles.
    again = target.submit(batch)
    assert {o.status for o in again} == {"acknowledged"}
    stored = _statements(ralph)
    ids = [st["id"] for st in stored]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {statement_id(s.key) for s in batch}
    assert set(ids) >= {statement_id(s.key) for s in batch if s.key != "xapi-key-0024"}
    by_id = {st["id"]: st for st in stored}
    void = by_id[statement_id("xapi-key-0024-v2")]
    assert void["verb"]["id"].endswith("/voided")
    assert void["object"] == {"objectType": "StatementRef", "id": statement_id("xapi-key-0024")}
    one = by_id[statement_id("xapi-key-0003")]
    assert one["actor"]["account"]["name"] == id_number(3)
    assert one["verb"]["id"].endswith("/passed") and one["result"]["success"] is True
    assert one["object"]["id"].endswith("/sd-2022/2022")
    # Different content under an old key is refused, not silently overwritten.
    changed = Submission(key="xapi-key-0003", action="submit",
                         record=record(3, evaluated_at="2022-12-01T08:00:00+00:00", credits=9))
    (outcome,) = target.submit([changed])
    assert outcome.status == "rejected" and "already exist" in outcome.reason
    target.close()
