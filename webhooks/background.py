"""Per-worker processing of stored deliveries after their answer went out (webhooks.inline_mode = "background")."""

from __future__ import annotations

import logging
import queue
import threading

from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.webhooks.processing import process_pending

log = logging.getLogger(__name__)


class BackgroundProcessor:
    """Per-worker thread that turns deliveries into learning records after their answer went out.

    Durable without a queue of its own: the inbox row is committed before the id is queued, so whatever
    this thread has not done when the worker dies (or when the queue is full) stays pending for
    `intake replay` / the scheduler. Started lazily, i.e. in the gunicorn worker after the fork.
    """

    # Deliveries taken per transaction: what queued while the previous batch ran, up to this. A batch costs about
    # ten round trips whatever its size, and in a gevent worker each round trip waits its turn behind the
    # requests being answered; at 100 per batch the thread fell behind 500 deliveries/s (BENCHMARKS.md, issue 16).
    BATCH = 1000

    def __init__(self, store: Store, settings: Settings, maxsize: int, batch: int = BATCH) -> None:
        self.store, self.settings, self.batch = store, settings, batch
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize)
        self.thread: threading.Thread | None = None
        self.skipped = 0
        self._lock = threading.Lock()

    def submit(self, wid: str) -> bool:
        """Queue one delivery; False (it stays pending) when the queue is full."""
        if self.thread is None:
            with self._lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="creditbridge-intake", daemon=True)
                    self.thread.start()
        try:
            self.queue.put_nowait(wid)
        except queue.Full:
            self.skipped += 1
            return False
        return True

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            ids = [] if first is None else [first]
            stop = first is None
            while not stop and len(ids) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                else:
                    ids.append(nxt)
            try:
                if ids:
                    # one chunk: the ids are known, so the whole batch is one transaction
                    process_pending(self.settings, self.store, webhook_ids=ids, chunk_size=len(ids))
            except Exception:
                log.exception("background processing of %d deliveries failed; they stay pending", len(ids))
            finally:
                for _ in range(len(ids) + (1 if stop else 0)):
                    self.queue.task_done()
            if stop:
                return

    def drain(self, timeout: float = 30.0) -> bool:
        """Finish what is queued and stop the thread. True if it finished within the timeout."""
        if self.thread is None:
            return True
        self.queue.put(None)
        self.thread.join(timeout)
        done = not self.thread.is_alive()
        self.thread = None
        return done
