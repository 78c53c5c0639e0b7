"""The scheduler tests use their own job functions (sched_helpers) and the registry tests' helpers."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "registry"))
