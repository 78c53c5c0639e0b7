"""Completion intake: the signed-webhook receiver, its durable inbox, processing, reconciliation, import."""
