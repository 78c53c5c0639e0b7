"""A --config file that cannot be read (issue #14 item 13): one `error:` line naming the file (and the line
and column of a byte that is not UTF-8), exit 2, no traceback, no secret of the file repeated."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from creditbridge.settings import load_settings
from creditbridge.settings.load import CONFIG_MAX_BYTES, ConfigError

Run = Callable[..., subprocess.CompletedProcess[str]]
SECRET = "s3cr3t-registry-key-0123456789"


def _refused(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == f"error: {expected}\n"
    assert "Traceback" not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_a_config_file_that_is_not_utf8(tmp_path: Path, creditbridge_cli: Run) -> None:
    cfg = tmp_path / "creditbridge.toml"
    # Saved by an editor in GB18030: in the comment, 学 (d1 a7) happens to be valid UTF-8, 分 (b7 d6) is not.
    cfg.write_bytes(f'[registry]\nsecret = "{SECRET}"\n# 学分登记\n'.encode("gb18030"))
    expected = f"{cfg}: line 3, column 5: not UTF-8 text (byte 0xb7); save the file as UTF-8"
    _refused(creditbridge_cli("--config", str(cfg), "report", "--json"), expected)
    _refused(creditbridge_cli("report", "--json", CREDITBRIDGE_CONFIG=str(cfg)), expected)
    with pytest.raises(ConfigError, match="line 3, column 5: not UTF-8"):
        load_settings(cfg, env={})


@pytest.mark.parametrize("path", ["/dev/null/creditbridge.toml", "{tmp}/" + "配" * 100 + ".toml",
                                  "{tmp}/" + "/".join(["c" * 250] * 20) + "/creditbridge.toml"])
def test_an_impossible_config_path(tmp_path: Path, creditbridge_cli: Run, path: str) -> None:
    path = path.format(tmp=tmp_path)
    reason = "Not a directory" if path.startswith("/dev/null") else "File name too long"
    expected = f"config file {path}: cannot be read: {reason}"
    _refused(creditbridge_cli("--config", path, "report", "--json"), expected)
    _refused(creditbridge_cli("push", "--dry-run", CREDITBRIDGE_CONFIG=path), expected)
    # `init` writes the --config file: it cannot be written there either.
    _refused(creditbridge_cli("--config", path, "init"), f"config file {path}: cannot be written: {reason}")
    assert not (tmp_path / "store.db").exists()  # refused before anything was created


def test_a_missing_config_file_is_still_named(tmp_path: Path, creditbridge_cli: Run) -> None:
    missing = tmp_path / "nowhere" / "creditbridge.toml"
    _refused(creditbridge_cli("--config", str(missing), "report"), f"config file not found: {missing}")


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a named pipe (FIFO)"), ("/dev/zero", "a character device"),
                                            ("/dev/null", "a character device"), ("dir", "a directory")])
def test_a_config_path_that_is_no_regular_file(tmp_path: Path, creditbridge_cli: Run, kind: str, what: str) -> None:
    """Attack report item 6: /dev/zero grew the memory without bound and a FIFO hung the command (no writer
    ever comes); both are refused before a byte is read."""
    if kind == "fifo":
        path = tmp_path / "creditbridge.toml"
        os.mkfifo(path)
    elif kind == "dir":
        path = tmp_path / "conf.d"
        path.mkdir()
    else:
        path = Path(kind)
    expected = f"config file {path}: is {what}, not a regular file"
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={})
    assert str(refused.value) == expected
    if kind == "dir":  # click's --config (and its $CREDITBRIDGE_CONFIG) refuses a directory with a usage error
        return
    _refused(creditbridge_cli("report", "--json", CREDITBRIDGE_CONFIG=str(path)), expected)
    _refused(creditbridge_cli("--config", str(path), "push", "--dry-run"), expected)
    assert not (tmp_path / "store.db").exists()


def test_a_config_file_too_large_to_be_one(tmp_path: Path, creditbridge_cli: Run) -> None:
    cfg = tmp_path / "creditbridge.toml"
    with cfg.open("w", encoding="utf-8") as f:  # valid TOML, only comments: 1 MB and a line
        f.write(f'[registry]\nsecret = "{SECRET}"\n')
        f.writelines("#" * 1023 + "\n" for _ in range(CONFIG_MAX_BYTES // 1024))
    expected = f"config file {cfg}: larger than 1 MB; a config file is a few kilobytes: check the path"
    _refused(creditbridge_cli("--config", str(cfg), "report", "--json"), expected)
    with pytest.raises(ConfigError, match="larger than 1 MB"):
        load_settings(cfg, env={})
    # Just under the bound is still read.
    cfg.write_text(f'[registry]\nsecret = "{SECRET}"\n' + "#" * (CONFIG_MAX_BYTES - 100), encoding="utf-8")
    assert load_settings(cfg, env={}).registry.secret.get_secret_value() == SECRET
