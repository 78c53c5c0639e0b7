"""The outbox tests share the registry tests' helpers (a live simulator, valid records)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
