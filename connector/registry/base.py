"""The one interface every registry target implements, and how a target is found by name.

Targets are looked up in the Python entry-point group `creditbridge.registry_targets`, so another
province's adapter can ship as its own package: it declares
`[project.entry-points."creditbridge.registry_targets"] myprov = "mypkg.target:MyTarget"` and users
set `registry.target = "myprov"`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any, Literal

from creditbridge.connector.registry.errors import RegistryConfigError
from creditbridge.settings.model import RegistrySettings

ENTRY_POINT_GROUP = "creditbridge.registry_targets"

Action = Literal["submit", "void"]
Status = Literal["acknowledged", "rejected", "transient"]


@dataclass(frozen=True)
class Submission:
    """One logical write: a credit record version (or the voiding of one), under its idempotency key."""

    key: str
    action: Action
    record: dict[str, Any]
    supersedes: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the registry said about one submission. `transient`: not decided, send again later."""

    key: str
    status: Status
    reason: str | None = None
    registry_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RegistryTarget(abc.ABC):
    """A place credit records go. `submit` answers one Outcome per submission, in any order, or raises
    a RegistryError for the whole batch (`retryable` says whether to send it again)."""

    #: Largest batch the target accepts; the outbox never sends more in one call.
    max_batch: int = 1000

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def submit(self, batch: Sequence[Submission]) -> list[Outcome]: ...

    def close(self) -> None:  # noqa: B027 - most targets hold nothing to release
        """Release connections or finish files."""

    def __enter__(self) -> RegistryTarget:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def available_targets() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_target(name: str, settings: RegistrySettings) -> RegistryTarget:
    """Instantiate the target registered under `name` with the `registry` settings section."""
    eps = available_targets()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is creditbridge installed with pip?)"
        raise RegistryConfigError(f"unknown registry target {name!r}; installed targets: {known}")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, RegistryTarget)):
        raise RegistryConfigError(f"entry point {name!r} does not name a RegistryTarget subclass")
    return cls(settings)
