"""What every apply step shares: the Moodle client, the store, the run's outcome, and batching.

Each step sends one batch, then records in the store what Moodle accepted in one transaction, so a
crash between batches leaves the store describing exactly what Moodle has (at worst a batch Moodle
took but the store did not hear of; every write here is safe to send again, and a created user is
adopted by username). A whole-call failure (Moodle down, token refused) records the batch's partial
result and stops the run with SyncAborted.

Concurrency (moodle.concurrency): a step hands `send` up to `wave_size` records; `send` cuts them into
batches and keeps up to that many calls in flight, each on a worker thread with its own client (its own HTTP
session), all sharing one Limiter that backs off on 429/503 or rising latency. Each batch's result is still
recorded in its own transaction, on the calling thread, as it comes back; `send` returns when the whole wave
is done, so the steps' order holds (accounts before their cohort members and enrolments).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import BatchResult, MoodleClient
from creditbridge.connector.transport import Limiter
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.sync.outcome import Progress, SyncAborted, SyncOutcome, no_progress

T = TypeVar("T")
K = TypeVar("K")
R = TypeVar("R")
Item = dict[str, Any]


@dataclass
class ApplyContext:
    settings: Settings
    store: Store
    client: MoodleClient
    outcome: SyncOutcome
    programme: str
    progress: Progress = no_progress
    # Moodle ids sync knows, by idnumber (filled from the store, then as cohorts/categories are made).
    refs: dict[tuple[str, str], int] = field(default_factory=dict)
    # Makes the workers' clients (one per thread); None: concurrency 1, everything on `client`.
    client_factory: Callable[[Settings], MoodleClient] | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _limiter: Limiter | None = field(default=None, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _workers: list[MoodleClient] = field(default_factory=list, init=False, repr=False)
    _workers_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def batch_size(self) -> int:
        return self.client.batch_size

    @property
    def concurrency(self) -> int:
        return self.settings.moodle.concurrency if self.client_factory is not None else 1

    @property
    def wave_size(self) -> int:
        """Records a step hands `send` at once: a batch for each call that may be in flight."""
        return self.batch_size * self.concurrency

    @property
    def write_calls(self) -> int:
        with self._workers_lock:
            return self.client.write_calls + sum(c.write_calls for c in self._workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        with self._workers_lock:
            for c in self._workers:
                c.close()
        self.client.close()

    def batches(self, items: Iterable[T]) -> Iterator[list[T]]:
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.wave_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def send(self, call: Callable[[Sequence[Item]], BatchResult], items: Sequence[Item],
             record: Callable[[BatchResult], None]) -> BatchResult:
        """Bulk writes, then `record` what went through (also when Moodle failed as a whole mid-way): one call
        here, or with concurrency above 1 one batch per worker at a time, each recorded as it comes back."""
        # A method of `self.client` (ctx.client.enrol_users...) is called on each worker's own client instead.
        method = getattr(call, "__func__", None) if getattr(call, "__self__", None) is self.client else None
        if method is not None and self.concurrency > 1 and len(items) > self.batch_size:
            result = self._fan_out(method, items, record)
        else:
            try:
                result = call(items)
            except MoodleError as e:
                self._record_partial(e, record)
                raise SyncAborted(f"Moodle failed mid-run, the rest is left for the next run: {e}") from e
            record(result)
        self._report(result)
        return result

    @staticmethod
    def _record_partial(e: MoodleError, record: Callable[[BatchResult], None]) -> None:
        partial = e.partial if isinstance(e.partial, BatchResult) else BatchResult()
        if partial.succeeded:
            record(partial)

    def _worker_client(self) -> MoodleClient:
        """This worker thread's own client, made on its first call (a requests.Session is not thread-safe)."""
        client: MoodleClient | None = getattr(self._local, "client", None)
        if client is None:
            assert self.client_factory is not None
            client = self._local.client = self.client_factory(self.settings)
            client.transport.limiter = self._limiter
            with self._workers_lock:
                self._workers.append(client)
        return client

    def _fan_out(self, method: Callable[[MoodleClient, Sequence[Item]], BatchResult], items: Sequence[Item],
                 record: Callable[[BatchResult], None]) -> BatchResult:
        pool = self._workers_pool()
        chunks = enumerate(chunked(items, self.batch_size))
        results: dict[int, BatchResult] = {}
        failure: MoodleError | None = None
        crash: Exception | None = None
        pending: dict[Future[BatchResult], int] = {}

        def work(chunk: Sequence[Item]) -> BatchResult:
            return method(self._worker_client(), chunk)

        def submit() -> None:
            index, chunk = next(chunks, (-1, None))
            if chunk is not None:
                pending[pool.submit(work, chunk)] = index

        def settle(future: Future[BatchResult], index: int) -> None:
            nonlocal failure, crash
            try:
                result = future.result()
            except MoodleError as e:
                self._record_partial(e, record)
                failure = failure or e
                return
            except Exception as e:  # not Moodle's answer (a bug): stop sending, still record what is in flight
                crash = crash or e
                return
            try:
                record(result)  # as each comes back: a crash loses at most the batches still in flight
            except Exception as e:  # the store refused: the other batches in flight are still tried
                crash = crash or e
                return
            results[index] = result

        for _ in range(self.concurrency):
            submit()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(future, pending.pop(future))
                    if failure is None and crash is None:
                        submit()
        except BaseException:
            # Ctrl-C while waiting: what Moodle took in the calls still in flight (each bounded by its timeouts)
            # is recorded before stopping, so the next run does not send it again.
            for future in list(pending):
                settle(future, pending.pop(future))
            raise
        if crash is not None:
            raise crash
        if failure is not None:
            # The batches in flight were waited for and recorded: the store holds all Moodle said it took.
            raise SyncAborted(f"Moodle failed mid-run, the rest is left for the next run: {failure}") from failure
        total = BatchResult()
        for index in sorted(results):  # the records' order, whichever batch came back first
            total.merge(results[index])
        return total

    def read_each(self, read: Callable[[MoodleClient, K], R], keys: Sequence[K]
                  ) -> Iterator[tuple[K, R | MoodleError]]:
        """`read(client, key)` for each key, in the keys' order: reads that do not depend on each other (one
        course's enrolment methods each), up to `concurrency` at a time on the workers' own clients. A
        MoodleError of one read comes back in its place (the caller decides whether that key or the run fails);
        any other error is raised once the reads in flight have ended."""
        if self.concurrency <= 1 or len(keys) <= 1:
            for key in keys:
                try:
                    yield key, read(self.client, key)
                except MoodleError as e:
                    yield key, e
            return

        def one(key: K) -> R | MoodleError:
            try:
                return read(self._worker_client(), key)
            except MoodleError as e:
                return e

        # Executor.map keeps at most the pool's threads busy and gives the results in order.
        yield from zip(keys, self._workers_pool().map(one, keys), strict=True)

    def _workers_pool(self) -> ThreadPoolExecutor:
        """The worker threads (made on first use) and the Limiter they and the main client share."""
        if self._pool is None:
            policy = self.client.transport.policy
            # A Retry-After pauses every worker, within the retry policy's cap (none when backoff is off).
            self._limiter = Limiter(self.concurrency,
                                    max_pause=policy.max_backoff_seconds if policy.backoff_seconds > 0 else 0.0)
            # The main client's own calls (lookups between steps) wait their turn like the workers' do.
            self.client.transport.limiter = self._limiter
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="moodle-worker")
        return self._pool

    def _report(self, result: BatchResult) -> None:
        for note in result.notes:
            if note not in self.outcome.notes:
                self.outcome.notes.append(note)
        for warning in result.warnings:
            # A warning Moodle tied to no record of the call: not a row's error, but never silent.
            self.outcome.error(None, "", f"{warning.function}: Moodle warned: {refusal(warning)}")


def refusal(error: MoodleError) -> str:
    """Moodle's reason for refusing a record, with its code and, for a missing right, what to grant."""
    text = error.message + (f" [{error.errorcode}]" if error.errorcode else "")
    if error.capability:
        text += f": the token user's role needs the capability {error.capability}"
    return text


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
