"""A small process supervisor: start children, restart one that dies (within a budget), forward SIGTERM/SIGINT,
and stop them all cleanly. The receiver and the scheduler are separate processes so APScheduler never runs in
a gunicorn worker (each worker would start its own scheduler) and one crashing does not take the other down."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)

    def start(self) -> None:
        self.proc = subprocess.Popen(list(self.argv), env=dict(self.env) if self.env is not None else None)
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, children: Sequence[Child], *, stop_timeout: float = 30.0, max_restarts: int = 5,
                 restart_window: float = 60.0, restart_delay: float = 1.0) -> None:
        self.children = list(children)
        self.stop_timeout, self.max_restarts = stop_timeout, max_restarts
        self.restart_window, self.restart_delay = restart_window, restart_delay
        self._stopping = False
        self._signal: int | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stopping = True
        self._signal = signum

    def run(self) -> int:
        """Run until a signal (exit 0) or a child that keeps dying (exit 1)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        code = 0
        try:
            for c in self.children:
                c.start()
            while not self._stopping:
                time.sleep(0.2)
                for c in self.children:
                    if self._stopping or c.alive:
                        continue
                    rc = c.proc.returncode if c.proc is not None else None
                    now = time.monotonic()
                    while c.restarts and now - c.restarts[0] > self.restart_window:
                        c.restarts.popleft()
                    if len(c.restarts) >= self.max_restarts:
                        log.error("%s exited (code %s) %d times within %.0fs; stopping everything", c.name, rc,
                                  len(c.restarts) + 1, self.restart_window)
                        self._stopping, code = True, 1
                        break
                    log.warning("%s exited (code %s); restarting it in %.1fs", c.name, rc, self.restart_delay)
                    time.sleep(self.restart_delay)
                    c.restarts.append(time.monotonic())
                    if not self._stopping:
                        c.start()
        finally:
            self._stop_all()
            for s, h in previous.items():
                signal.signal(s, h)
        return code

    def _stop_all(self) -> None:
        sig = signal.SIGINT if self._signal == signal.SIGINT else signal.SIGTERM
        for c in self.children:
            if c.alive and c.proc is not None:
                log.info("stopping %s (pid %d)", c.name, c.proc.pid)
                c.proc.send_signal(sig)
        deadline = time.monotonic() + self.stop_timeout
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", c.name, self.stop_timeout)
                c.proc.kill()
                c.proc.wait()
