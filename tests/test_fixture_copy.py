"""The suite's copy of the recorded files against `../shared`, where a workplace has it beside the clone."""

from __future__ import annotations

import filecmp
import shutil
import warnings
from pathlib import Path

import pytest
from fixture_paths import COPIED, FIXTURES, SHARED, fixture


def _differences(shared: Path = SHARED, fixtures: Path = FIXTURES) -> list[str]:
    out: list[str] = []
    for folder in COPIED:
        source = shared / folder
        if not source.is_dir():
            continue
        copy = fixtures / folder.removeprefix("fixtures/")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            mine = copy / path.relative_to(source)
            if not mine.is_file():
                out.append(f"{folder}/{path.relative_to(source)} is new in ../shared")
            elif not filecmp.cmp(path, mine, shallow=False):
                out.append(f"{folder}/{path.relative_to(source)} differs from ../shared")
    return out


def test_every_copied_folder_is_in_the_clone() -> None:
    for folder in COPIED:
        assert any(fixture(folder.removeprefix("fixtures/")).iterdir()), folder


def test_missing_fixture_fails_with_its_name() -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such-recording\.json"):
        fixture("moodle-ws", "no-such-recording.json")


def test_shared_has_no_newer_recordings_than_the_copy() -> None:
    """A warning, not a failure: new recordings are news for a developer, not a broken build. Copy them with
    `cp -r ../shared/fixtures/* tests/fixtures/ && cp -r ../shared/samples tests/fixtures/` and run the suite."""
    if not SHARED.is_dir():
        pytest.skip("no ../shared beside this clone: nothing to compare the copy with")
    differences = _differences()
    if differences:
        warnings.warn("tests/fixtures is behind ../shared: " + "; ".join(differences), stacklevel=1)


def test_the_comparison_names_new_and_changed_recordings(tmp_path: Path) -> None:
    shared, copy = tmp_path / "shared", tmp_path / "copy"
    shutil.copytree(FIXTURES / "moodle-ws", shared / "fixtures" / "moodle-ws")
    shutil.copytree(FIXTURES / "moodle-ws", copy / "moodle-ws")
    assert _differences(shared, copy) == []
    (shared / "fixtures" / "moodle-ws" / "new.json").write_text("{}", encoding="utf-8")
    (shared / "fixtures" / "moodle-ws" / "users.json").write_text("{}", encoding="utf-8")
    assert _differences(shared, copy) == ["fixtures/moodle-ws/new.json is new in ../shared",
                                          "fixtures/moodle-ws/users.json differs from ../shared"]
