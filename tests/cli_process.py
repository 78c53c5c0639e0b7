"""Run the real `creditbridge` CLI in a child process, optionally with a bound on its address space, and
measure what it cost (peak RSS, wall time): how the hardening tests drive it, the way a user does."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_argv(config: Path | None, *args: str) -> list[str]:
    return [sys.executable, "-m", "creditbridge.cli.main", *(["--config", str(config)] if config else []), *args]


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}


def run_cli(config: Path | None, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            memory_mb: int | None = None, timeout: float = 60.0) -> Ran:
    """One CLI run to its end. `memory_mb` caps the child's address space (RLIMIT_AS), so a bomb that gets
    past a bound fails the test with a MemoryError instead of taking the machine down."""

    def limit() -> None:
        if memory_mb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    start = time.monotonic()
    proc = subprocess.Popen(cli_argv(config, *args), env=child_env(env), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    got: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        # wait4, not Popen.wait: the kernel's resource usage of this one child (its peak RSS).
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    seconds = time.monotonic() - start
    if seconds >= timeout:
        raise AssertionError(f"creditbridge {' '.join(args)} took more than {timeout}s\n{got.get('err', '')}")
    return Ran(proc.returncode, got.get("out", ""), got.get("err", ""), seconds, usage.ru_maxrss / 1024)


def start_cli(config: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A CLI run left running (for runs at once); finish it with `finish`."""
    return subprocess.Popen(cli_argv(config, *args), env=child_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> Ran:
    start = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    return Ran(proc.returncode, out, err, time.monotonic() - start, 0.0)


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def gated(app: Any) -> threading.Event:
    """Every request to this in-process WSGI app (sandbox, registry simulator) waits until the returned event
    is set: a run against it is held mid-way, still holding its locks, for as long as a test needs."""
    gate = threading.Event()
    inner = app.wsgi_app

    def wsgi(environ: Any, start_response: Any) -> Any:
        gate.wait(60)
        return inner(environ, start_response)

    app.wsgi_app = wsgi
    return gate


def first_stderr_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Block until the running CLI writes its first line to stderr (and return it)."""
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(proc.stderr.readline() if proc.stderr else ""), daemon=True)
    t.start()
    t.join(timeout)
    if not got:
        raise AssertionError(f"no line on stderr within {timeout}s")
    return got[0]


def sheet_processes(path: Path) -> list[int]:
    """The live sheet-reader child processes (readers/sheet_process.py) reading `path`, whoever their parent:
    a test asserts none is left behind. A zombie (ended, not yet reaped) is not live."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and str(path).encode() in argv and any(b"sheet_process" in a for a in argv):
            found.append(int(proc.name))
    return found
