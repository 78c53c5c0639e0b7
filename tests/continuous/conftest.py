"""The continuous-mode tests use the registry, webhook and mapping tests' helpers."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for sub in ("registry", "webhooks", "mappings"):
    sys.path.insert(0, str(HERE.parent / sub))
sys.path.insert(0, str(HERE))
