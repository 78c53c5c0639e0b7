"""The one root of the errors of the outside services creditbridge calls: Moodle's web services
(`connector.errors.MoodleError`) and the credit registries (`connector.registry.errors.RegistryError`).

Both carry what a caller needs to decide what to do, under the same names: the service's error `code`,
the HTTP `status`, the `request_id` the service gave (for its operators' logs), `retryable` (whether sending
the same request again may succeed), `retry_after` (seconds the service asked to wait, when it said), `sent`
(false when the request never left: repeating it is safe even for a write) and `exhausted` (the retry policy,
connector/retry.py, already resent it as often as it allows).
The message is masked here, once: a service's error text may quote the record it refused, ID number included.
"""

from __future__ import annotations

from typing import ClassVar

from creditbridge import CreditbridgeError
from creditbridge.records import mask_id_numbers


class ExternalServiceError(CreditbridgeError):
    """A call to an outside service failed. Retry only when `retryable` is true."""

    retryable: ClassVar[bool] = False
    sent: bool = True
    exhausted: bool = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        message = mask_id_numbers(message)
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
