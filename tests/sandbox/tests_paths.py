"""Where the shared transcripts live (the same place tests/conftest.py's FIXTURES points to)."""

from fixture_paths import fixture

FIXTURES = fixture("moodle-ws")
