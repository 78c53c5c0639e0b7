"""Outbox errors."""

from __future__ import annotations

from creditbridge import CreditbridgeError


class OutboxError(CreditbridgeError):
    """The outbox cannot build or push (a missing table, a misconfigured target). Not retryable until
    the cause is fixed; nothing already stored is changed."""
