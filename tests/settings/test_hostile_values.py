"""Settings values the tester found accepted (attack report item 8): each is refused with `error: <file>:
<section.key>: ...`, exit 2, before any command acts on it, and no traceback is printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from creditbridge.settings import load_settings

# (section, TOML line, command that would use the value)
BAD = [
    ("moodle", "timeout_seconds = inf", ["moodle", "check"]),
    ("moodle", "timeout_seconds = 1e308", ["moodle", "check"]),
    ("moodle", "connect_timeout_seconds = inf", ["moodle", "check"]),
    ("moodle", "connect_timeout_seconds = 1e308", ["moodle", "check"]),
    ("moodle", "timeout_seconds = nan", ["moodle", "check"]),
    ("moodle", "backoff_seconds = inf", ["moodle", "check"]),
    ("moodle", "retries = true", ["moodle", "check"]),
    ("webhooks", "port = 70000", ["serve", "--print-command"]),
    ("webhooks", "port = -1", ["serve", "--print-command"]),
    ("webhooks", "port = 0", ["serve", "--print-command"]),
    ("webhooks", 'host = ""', ["serve", "--print-command"]),
    ("webhooks", "read_timeout_seconds = true", ["serve", "--print-command"]),
    ("webhooks", "workers = false", ["serve", "--print-command"]),
    ("registry", "timeout_seconds = inf", ["serve", "--print-command"]),
    ("registry", "retries = 1000000", ["push", "--dry-run"]),
    ("scheduler", "max_workers = 1000", ["scheduler", "--list"]),
    ("registry", "retries = true", ["push", "--dry-run"]),
    ("registry", "backoff_seconds = inf", ["push", "--dry-run"]),
    ("registry", "backoff_seconds = nan", ["push", "--dry-run"]),
    ("registry", "backoff_seconds = 1e9", ["push", "--dry-run"]),
    ("registry", "batch_size = 0", ["push", "--dry-run"]),
    ("registry", "batch_size = 100000000", ["push", "--dry-run"]),
    # 5 base64 characters: the library's decoder fails, and gunicorn's workers used to die at boot with it
    ("webhooks", 'secrets = ["whsec_ok+good+key+0123", "abcde"]', ["serve", "--print-command"]),
]


@pytest.mark.parametrize(("section", "line", "command"), BAD, ids=[f"{s}.{line}" for s, line, _ in BAD])
def test_bad_value_is_refused_naming_the_key(section: str, line: str, command: list[str], tmp_path: Path,
                                             creditbridge_cli: Any) -> None:
    config = tmp_path / "creditbridge.toml"
    config.write_text(f"[{section}]\n{line}\n", encoding="utf-8")
    proc = creditbridge_cli("--config", str(config), *command, CREDITBRIDGE_MOODLE_URL="http://127.0.0.1:9")
    key = line.split(" = ")[0]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {config}: {section}.{key}: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_serve_port_option_is_bounded(creditbridge_cli: Any) -> None:
    proc = creditbridge_cli("serve", "--port", "70000", "--print-command")
    assert proc.returncode == 2 and "--port" in proc.stderr and "Traceback" not in proc.stderr


def test_good_numbers_still_load(tmp_path: Path) -> None:
    # Integers where floats are expected (TOML `10`), and the documented bounds themselves, stay valid.
    config = tmp_path / "ok.toml"
    config.write_text("[moodle]\ntimeout_seconds = 3600\nconnect_timeout_seconds = 1\n"
                      "[webhooks]\nport = 65535\nread_timeout_seconds = 10\nhost = \"127.0.0.2\"\n", encoding="utf-8")
    s = load_settings(config, env={})
    assert s.moodle.timeout_seconds == 3600.0 and s.webhooks.port == 65535
    assert s.webhooks.read_timeout_seconds == 10.0 and s.webhooks.host == "127.0.0.2"
