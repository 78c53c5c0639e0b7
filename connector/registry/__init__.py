"""Credit-registry targets behind one interface (`RegistryTarget`), found by name through entry points."""

from creditbridge.connector.registry.base import Outcome, RegistryTarget, Submission, load_target
from creditbridge.connector.registry.errors import (
    RegistryAuthError,
    RegistryConfigError,
    RegistryConflictError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailableError,
)

__all__ = [
    "Outcome",
    "RegistryAuthError",
    "RegistryConfigError",
    "RegistryConflictError",
    "RegistryError",
    "RegistryProtocolError",
    "RegistryTarget",
    "RegistryUnavailableError",
    "Submission",
    "load_target",
]
