"""Registry errors by cause. `retryable` tells the outbox whether resending the same batch (with the
same idempotency keys) may succeed; every library error is translated to one of these in the target."""

from __future__ import annotations

from creditbridge import CreditbridgeError
from creditbridge.records import mask_id_numbers


class RegistryError(CreditbridgeError):
    """Root of the registry errors. Carries what a caller needs: HTTP status, error code, request id."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        # A registry's error text may quote the record it refused, ID number included.
        message = mask_id_numbers(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after

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
