"""`creditbridge run` refuses, before it starts any child, a receiver port that is also a metrics port: the
scheduler would serve /metrics on the webhook port and the receiver be restarted for ever (hostile review)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import run_cli


def _config(tmp_path: Path, db_url: str, metrics: str) -> Path:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[metrics]\n{metrics}\n')
    return cfg


@pytest.mark.parametrize(("metrics", "args", "said"), [
    ("scheduler_port = 19311", ["--port", "19311"], "metrics.scheduler_port = 19311 is also --port"),
    ("port = 19312", ["--port", "19312"], "metrics.port = 19312 is also --port"),
    ("scheduler_port = 8080", [], "metrics.scheduler_port = 8080 is also webhooks.port"),
    ("port = 19313\nscheduler_port = 19313", [], "metrics.scheduler_port = 19313 is also metrics.port"),
])
def test_run_refuses_a_port_used_twice(sqlite_url: str, tmp_path: Path, metrics: str, args: list[str],
                                       said: str) -> None:
    ran = run_cli(_config(tmp_path, sqlite_url, metrics), "run", *args, timeout=60)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith(f"error: {said}"), ran.stderr
    assert "started receiver" not in ran.output and "started scheduler" not in ran.output


@pytest.mark.parametrize("port", ["0", "-1", "70000"])
def test_run_refuses_a_port_out_of_range(sqlite_url: str, tmp_path: Path, port: str) -> None:
    ran = run_cli(_config(tmp_path, sqlite_url, ""), "run", "--port", port, timeout=60)
    assert ran.code == 2, ran.output
    assert "--port" in ran.stderr and "started receiver" not in ran.output
