"""`sync roster|catalog|topics` given a path that exists but is no regular file (attack report item 13): it said
"no such file"; it names what the path is, exit 2, one `error:` line, nothing stored. A FIFO is refused
before it is opened (opening it would wait for a writer forever)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]
# No Moodle answers here: the file is refused before any call.
ENV = {"CREDITBRIDGE_MOODLE_URL": "http://127.0.0.1:9", "CREDITBRIDGE_MOODLE_TOKEN": "t",
       "CREDITBRIDGE_USERNAME_KEY": "test-key"}


@pytest.mark.parametrize(("kind", "target", "what"), [
    ("roster", "fifo", "a named pipe (FIFO)"), ("roster", "/dev/null", "a character device"),
    ("catalog", "dir", "a directory"), ("topics", "fifo", "a named pipe (FIFO)"),
    ("catalog", "/dev/zero", "a character device")])
def test_a_path_that_is_no_regular_file_is_named_for_what_it_is(tmp_path: Path, creditbridge_cli: Run, kind: str,
                                                                target: str, what: str) -> None:
    if target == "fifo":
        path = tmp_path / f"{kind}.csv"
        os.mkfifo(path)
    elif target == "dir":
        path = tmp_path / f"{kind}.csv"
        path.mkdir()
    else:
        path = Path(target)
    proc = creditbridge_cli("sync", kind, str(path), **ENV)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == f"error: {path}: is {what}, not a regular file; give the path of the {kind} file\n"
    assert proc.stdout == ""
    runs = json.loads(creditbridge_cli("sync", "runs", "--json", **ENV).stdout)
    assert all(r["outcome"] != "running" for r in runs) and not any((r["counts"] or {}).get("created") for r in runs)


def test_a_missing_file_is_still_no_such_file(tmp_path: Path, creditbridge_cli: Run) -> None:
    proc = creditbridge_cli("sync", "roster", str(tmp_path / "missing.csv"), **ENV)
    assert (proc.returncode, proc.stderr) == (2, f"error: {tmp_path / 'missing.csv'}: no such file\n")
