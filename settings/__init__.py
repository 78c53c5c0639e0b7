"""Settings: one TOML file, every secret overridable from the environment."""

from creditbridge.settings.load import ConfigError, default_config_text, load_settings
from creditbridge.settings.model import Settings

__all__ = ["ConfigError", "Settings", "default_config_text", "load_settings"]
