"""Registry errors by cause. `retryable` tells the outbox whether resending the same batch (with the
same idempotency keys) may succeed; every library error is translated to one of these in the target."""

from __future__ import annotations

from creditbridge.connector.service_errors import ExternalServiceError


class RegistryError(ExternalServiceError):
    """Root of the registry errors. Carries what a caller needs (ExternalServiceError's fields): HTTP status,
    error code, request id, retry_after; the message is masked there."""

    def __str__(self) -> str:
        extra = [f"status {self.status}"] if self.status else []
        if self.code:
            extra.append(f"code {self.code}")
        if self.request_id:
            extra.append(f"request {self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message


class RegistryUnavailableError(RegistryError):
    """The registry did not answer usefully this time (429, 5xx, timeout, dropped connection).
    Retry is safe: the batch is resent with the same idempotency keys, so nothing is recorded twice."""

    retryable = True


class RegistryAuthError(RegistryError):
    """The registry refused our credentials or signature (401/403). Retry is not safe to expect to
    help: fix the key id / secret (or the clock, for a stale timestamp) first."""


class RegistryConflictError(RegistryError):
    """An idempotency key was reused with a different body (409/422). Not retryable: it is a bug or a
    changed payload under an old version number, and resending would only be refused again."""


class RegistryProtocolError(RegistryError):
    """The registry answered something we cannot read (bad JSON, missing results). Not retryable."""


class RegistryConfigError(RegistryError):
    """The target is misconfigured or unknown (no such entry point, bad URL, missing directory).
    Not retryable until the settings are fixed."""
