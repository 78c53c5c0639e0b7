"""The registry outbox: changed credit results become versioned submissions, pushed exactly once."""
