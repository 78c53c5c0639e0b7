"""Schema upgrades through alembic. Imported only when a store's schema is not at SCHEMA_HEADS (store/db.py):
alembic, mako and the migration scripts cost about 0.2 s of CPU, paid otherwise by every CLI command."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("creditbridge.store.migrations")))
    # ConfigParser interpolation would choke on '%' in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    # "heads": each flow keeps its own migration branch off 0001_core, so there may be several heads.
    command.upgrade(alembic_config(url), revision)
