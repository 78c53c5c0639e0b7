"""A programme code is the shipped rule file's name, never a file that happens to carry the same name in the
working directory (hostile review of #17): `load_programme("sd-2022")` looked the code up as a path first, so a
file `sd-2022` in the directory a worker or the scheduler was started from stood in for the shipped rules (or
broke every evaluation with its parse errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditbridge.programmes import builtin_rule_path, load_programme


def test_a_file_named_like_a_programme_in_the_working_directory_is_not_its_rule_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = load_programme("sd-2022")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sd-2022").write_text("id: sd-2022\nroles: [this is not the province's rule file\n", encoding="utf-8")
    prog = load_programme("sd-2022")
    assert prog.hash == shipped.hash
    assert builtin_rule_path("sd-2022") is not None


def test_a_rule_file_is_still_loaded_by_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = builtin_rule_path("sd-2022")
    assert shipped is not None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sd-2022").write_bytes(shipped.read_bytes())
    assert load_programme("./sd-2022").hash == load_programme("sd-2022").hash
    assert load_programme(tmp_path / "sd-2022").id == "sd-2022"
