"""Every package of the product ships in a wheel (hostile review of #16/#17): pyproject lists its packages one
by one, and `creditbridge.scheduling`, added by the scheduler's split, was not among them. A non-editable
install (`pip install creditbridge-*.whl`, a Docker image) had no creditbridge.scheduling, so `creditbridge
scheduler` and `creditbridge run` failed with ModuleNotFoundError; the editable installs of development and CI
never showed it. Checked against the wheel built from this tree: `scheduling/*.py` were its only missing
modules."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench", "build", "dist"}  # tools and test doubles outside the package tree


def test_every_package_directory_is_declared_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-dir"] == {"creditbridge": "."}
    on_disk = set()
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and (rel.parts[0] in NOT_SHIPPED or rel.parts[0].startswith(".")):
            continue
        on_disk.add(".".join(("creditbridge", *rel.parts)))
    assert "creditbridge.scheduling" in on_disk
    assert sorted(on_disk - set(config["packages"])) == []
