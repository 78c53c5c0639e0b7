"""Run the real `creditbridge` CLI in a child process, optionally with a bound on its address space, and
measure what it cost (peak RSS, wall time): how the hardening tests drive it, the way a user does."""

from __future__ import annotations

import contextlib
import os
import signal
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


# Runs the CLI as its own child and reports that child's rusage peak RSS on a pipe. Linux keeps a process's peak
# RSS across fork and execve: a CLI spawned straight from pytest starts with pytest's own RSS (300 MB and more late
# in a full run) as its "peak". This launcher has a small memory when it forks, so the CLI's figure is its own.
# argv: the pipe's file descriptor, the address-space cap in MB (0: none), then the CLI's argv.
_LAUNCHER = """
import os, resource, signal, sys
report, cap = int(sys.argv[1]), int(sys.argv[2])
pid = os.fork()
if pid == 0:
    os.close(report)
    if cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap << 20, cap << 20))
    os.execv(sys.argv[3], sys.argv[3:])
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
os.close(report)
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_cli(config: Path | None, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            memory_mb: int | None = None, timeout: float = 60.0) -> Ran:
    """One CLI run to its end. `memory_mb` caps the child's address space (RLIMIT_AS), so a bomb that gets
    past a bound fails the test with a MemoryError instead of taking the machine down. The peak RSS is the CLI's
    own (see _LAUNCHER)."""
    start = time.monotonic()
    report, report_w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report_w), str(memory_mb or 0),
                                 *cli_argv(config, *args)], env=child_env(env), cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, pass_fds=(report_w,), start_new_session=True)
    finally:
        os.close(report_w)
    got: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()

    def kill() -> None:  # the launcher and the CLI under it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        proc.wait()
    finally:
        killer.cancel()
    for t in readers:
        t.join()
    with os.fdopen(report, "rb") as f:
        peak_kb = int(f.read() or 0)
    seconds = time.monotonic() - start
    if seconds >= timeout:
        raise AssertionError(f"creditbridge {' '.join(args)} took more than {timeout}s\n{got.get('err', '')}")
    return Ran(proc.returncode, got.get("out", ""), got.get("err", ""), seconds, peak_kb / 1024)


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


def started_sheet_processes(path: Path, count: int, timeout: float = 10.0) -> list[int]:
    """sheet_processes once it lists `count` (or after `timeout`): a reader started a moment ago may show no command
    line yet. Popen returns when the child's exec releases the parent's vfork, and Linux sets the new program's
    arguments, which /proc/PID/cmdline reads, a moment after that."""
    deadline = time.monotonic() + timeout
    while len(found := sheet_processes(path)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


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
