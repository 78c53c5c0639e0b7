"""`creditbridge run` as a subprocess: the receiver answers /healthz, the scheduler holds the lock, SIGTERM stops
both children and the parent exits 0; a child that dies is restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from creditbridge.scheduler import lock_holder
from creditbridge.settings import load_settings
from creditbridge.store import open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> dict[int, str]:
    """Direct children of `pid`: {pid: command line}."""
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


@pytest.mark.timeout(90)
def test_run_starts_receiver_and_scheduler_and_stops_both_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "state.db"
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n[webhooks]\nport = {port}\nworkers = 1\n'
                   f'[scheduler]\nstandby_retry_seconds = 0.5\n', encoding="utf-8")
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "creditbridge.cli.main", "--config", str(cfg), "run"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    settings = load_settings(cfg, env={})
    try:
        deadline = time.monotonic() + 40
        health = None
        while health is None and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            health = _healthz(port)
            time.sleep(0.2)
        assert health is not None and health["ok"] is True
        store = open_store(settings.database.url, migrate=False)
        holder = None
        while holder is None and time.monotonic() < deadline:
            holder = lock_holder(settings, store)
            time.sleep(0.2)
        store.dispose()
        kids = _children(proc.pid)
        assert len(kids) == 2, kids
        receiver = next(p for p, cmd in kids.items() if "gunicorn" in cmd)
        sched = next(p for p, cmd in kids.items() if "scheduler" in cmd)
        assert holder is not None and holder.startswith(f"{socket.gethostname()}:{sched} ")
        # gunicorn's workers are the receiver's children: the scheduler is not among them.
        assert all("scheduler" not in cmd for cmd in _children(receiver).values())

        # A scheduler that dies is restarted by the supervisor; the receiver keeps serving meanwhile.
        os.kill(sched, signal.SIGKILL)
        restarted = None
        while restarted is None and time.monotonic() < deadline:
            restarted = next((p for p, cmd in _children(proc.pid).items() if "scheduler" in cmd and p != sched), None)
            assert _healthz(port) is not None
            time.sleep(0.2)
        assert restarted is not None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert not _alive(receiver) and not _alive(restarted)
    assert _healthz(port) is None
    store = open_store(settings.database.url, migrate=False)
    assert lock_holder(settings, store) is None, "the scheduler released its lock"
    store.dispose()
    out = (tmp_path / "run.log").read_text()
    assert "scheduler active" in out and "restarting it" in out
