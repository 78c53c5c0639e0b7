"""What every apply step shares: the Moodle client, the store, the run's outcome, and batching.

Each step sends one batch, then records in the store what Moodle accepted in one transaction, so a
crash between batches leaves the store describing exactly what Moodle has (at worst a batch Moodle
took but the store did not hear of; every write here is safe to send again, and a created user is
adopted by username). A whole-call failure (Moodle down, token refused) records the batch's partial
result and stops the run with SyncAborted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from creditbridge.connector.errors import MoodleError
from creditbridge.connector.moodle import BatchResult, MoodleClient
from creditbridge.settings import Settings
from creditbridge.store import Store
from creditbridge.sync.outcome import Progress, SyncAborted, SyncOutcome, no_progress

T = TypeVar("T")
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

    @property
    def batch_size(self) -> int:
        return self.client.batch_size

    def batches(self, items: Iterable[T]) -> Iterator[list[T]]:
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def send(self, call: Callable[[Sequence[Item]], BatchResult], items: Sequence[Item],
             record: Callable[[BatchResult], None]) -> BatchResult:
        """One bulk write, then `record` what went through (also when Moodle failed as a whole mid-way)."""
        try:
            result = call(items)
        except MoodleError as e:
            partial = e.partial if isinstance(e.partial, BatchResult) else BatchResult()
            if partial.succeeded:
                record(partial)
            raise SyncAborted(f"Moodle failed mid-run, the rest is left for the next run: {e}") from e
        record(result)
        for note in result.notes:
            if note not in self.outcome.notes:
                self.outcome.notes.append(note)
        for warning in result.warnings:
            # A warning Moodle tied to no record of the call: not a row's error, but never silent.
            self.outcome.error(None, "", f"{warning.function}: Moodle warned: {refusal(warning)}")
        return result


def refusal(error: MoodleError) -> str:
    """Moodle's reason for refusing a record, with its code and, for a missing right, what to grant."""
    text = error.message + (f" [{error.errorcode}]" if error.errorcode else "")
    if error.capability:
        text += f": the token user's role needs the capability {error.capability}"
    return text


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
