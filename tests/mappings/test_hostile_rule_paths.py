"""Rule files and programme codes a tester broke the CLI with (attack report item 11): YAML nested 100,000
levels deep was a RecursionError traceback, a programme code too long for a file name an OSError traceback, a
rule file that is a FIFO hung `rules check`. Each is one clear error now, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from creditbridge.input_limits import MAX_YAML_DEPTH
from creditbridge.programmes import ProgrammeNotFound, load_programme

Run = Callable[..., subprocess.CompletedProcess[str]]


def _clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  "a:\n" + "".join("  " * i + "- b:\n" for i in range(1, MAX_YAML_DEPTH + 50))])
def test_yaml_nested_too_deep_is_refused_with_its_line(tmp_path: Path, creditbridge_cli: Run, text: str) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(text, encoding="utf-8")
    proc = creditbridge_cli("rules", "check", str(deep), "--json")
    _clean(proc)
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["reason"].startswith(f"not valid YAML: nested more than {MAX_YAML_DEPTH} levels deep at line")
    assert problem["line"] == (1 if text.startswith("[") else MAX_YAML_DEPTH // 2 + 1)
    # The catalog reader shares the loader: the same refusal, before any Moodle call.
    proc = creditbridge_cli("sync", "catalog", str(deep), CREDITBRIDGE_MOODLE_URL="http://127.0.0.1:9",
                            CREDITBRIDGE_MOODLE_TOKEN="t", CREDITBRIDGE_USERNAME_KEY="k")
    _clean(proc)
    assert proc.stderr.startswith(f"error: deep.yaml: nested more than {MAX_YAML_DEPTH} levels deep at line")


def test_a_yaml_nested_as_deep_as_allowed_still_loads(tmp_path: Path, creditbridge_cli: Run) -> None:
    ok = tmp_path / "ok.yaml"
    for depth, refused in ((MAX_YAML_DEPTH, False), (MAX_YAML_DEPTH + 1, True)):
        ok.write_text("[" * depth + "]" * depth, encoding="utf-8")
        (problem,) = json.loads(creditbridge_cli("rules", "check", str(ok), "--json").stdout)["problems"]
        assert ("nested more than" in problem["reason"]) is refused, (depth, problem)
        assert refused or problem["reason"] == "a rule file is a YAML mapping (id, name, year, ...)"


def test_a_programme_code_too_long_for_a_file_name(tmp_path: Path, creditbridge_cli: Run) -> None:
    code = "p" * 300
    with pytest.raises(ProgrammeNotFound, match=r"no rule file for programme 'p{300}'"):
        load_programme(code)
    with pytest.raises(ProgrammeNotFound, match=r"rule file p{300}\.yaml not found"):
        load_programme(code + ".yaml")
    proc = creditbridge_cli("report", "--programme", code, "--out", str(tmp_path / "out"))
    _clean(proc)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "File name too long" in proc.stderr  # the report's own file name: no file can be written by it


def test_a_rule_file_that_is_a_fifo(tmp_path: Path, creditbridge_cli: Run) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    proc = creditbridge_cli("rules", "check", str(fifo))
    _clean(proc)
    assert proc.stderr == f"error: {fifo}: is a named pipe (FIFO), not a regular file\n"
    with pytest.raises(ProgrammeNotFound, match="is a named pipe"):
        load_programme(fifo)


def test_a_programme_code_cannot_reach_outside_the_rules_folder() -> None:
    from creditbridge.programmes import builtin_programmes, builtin_rule_path

    assert builtin_rule_path("sd-2022") is not None and "sd-2022" in builtin_programmes()
    for code in ("../rules/sd-2022", "rules/../rules/sd-2022", "/etc/passwd", "sd-2022/../sd-2022", ""):
        assert builtin_rule_path(code) is None, code
