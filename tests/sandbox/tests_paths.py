"""Where the shared transcripts live (the same place tests/conftest.py's FIXTURES points to)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "moodle-ws"
