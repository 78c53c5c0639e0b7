"""The one place the test suite finds its data: `tests/fixtures/`, a copy of the recorded files in `../shared`.

The suite must pass in a clone with nothing beside it, so it never reads `../shared` itself; a missing file here
is a broken checkout and fails the test that needs it (it never skips). `test_fixture_copy.py` says when
`../shared` holds newer recordings than this copy.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MOODLE_WS = FIXTURES / "moodle-ws"
PLUGIN_WEBHOOKS = FIXTURES / "plugin-webhooks"
SAMPLES = FIXTURES / "samples"
# Where the copy comes from, beside the repository in a developer's workplace (absent in a plain clone).
SHARED = Path(__file__).resolve().parents[2] / "shared"
COPIED = ("fixtures/moodle-ws", "fixtures/plugin-webhooks", "samples")


def fixture(*parts: str) -> Path:
    """A file or folder under tests/fixtures that must exist: a missing one fails loudly, naming it."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"test fixture missing: {path} (copy it from ../shared, see tests/fixture_paths.py)")
    return path
