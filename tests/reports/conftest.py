"""The report tests share the registry tests' helpers (valid ID numbers, credit results)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
