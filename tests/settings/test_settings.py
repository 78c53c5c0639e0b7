"""Settings: defaults, the TOML file, environment overrides for every secret, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditbridge.settings import ConfigError, default_config_text, load_settings


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.database.url == "sqlite:///creditbridge.db"
    assert s.moodle.url == "http://127.0.0.1:8765"
    assert s.sync.suspend_threshold == 0.10
    assert s.webhooks.max_body_bytes == 64 * 1024


def test_default_config_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(default_config_text(), encoding="utf-8")
    assert load_settings(path, env={}) == load_settings(tmp_path / "c.toml", env={})
    from creditbridge.settings.model import Settings

    assert load_settings(path, env={}).model_dump() == Settings().model_dump()


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[moodle]\nurl = "http://file"\ntoken = "fromfile"\n[database]\nurl = "sqlite:///x.db"\n')
    env = {
        "CREDITBRIDGE_MOODLE_URL": "http://env",
        "CREDITBRIDGE_MOODLE_TOKEN": "envtoken",
        "CREDITBRIDGE_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "CREDITBRIDGE_WEBHOOK_SECRET": "whsec_YWFh, whsec_YmJi",
        "CREDITBRIDGE_REGISTRY_SECRET": "regsecret",
    }
    s = load_settings(path, env=env)
    assert s.moodle.url == "http://env"
    assert s.moodle.token.get_secret_value() == "envtoken"
    assert s.database.url == "postgresql+psycopg://u@h/db"
    assert [x.get_secret_value() for x in s.webhooks.secrets] == ["whsec_YWFh", "whsec_YmJi"]
    assert s.registry.secret.get_secret_value() == "regsecret"
    # Secrets never show in a repr that could end up in a log.
    assert "envtoken" not in repr(s) and "regsecret" not in repr(s)


def test_config_from_env_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[sync]\nprogramme = "jx-2018"\n')
    assert load_settings(env={"CREDITBRIDGE_CONFIG": str(path)}).sync.programme == "jx-2018"


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sync]\nsuspend_threshold = 3\n")
    with pytest.raises(ConfigError, match=r"sync\.suspend_threshold"):
        load_settings(path, env={})


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[moodle]\ntokn = 'x'\n")
    with pytest.raises(ConfigError, match=r"moodle\.tokn"):
        load_settings(path, env={})


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[moodle\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
