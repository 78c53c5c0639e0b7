"""The settings of a quickstart run, and the `creditbridge.toml` it leaves behind for the user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from creditbridge.quickstart.services import REGISTRY_KEY_ID, SANDBOX_WWWROOT, Secrets
from creditbridge.settings import Settings, load_settings
from creditbridge.settings.private import write_private_text

# Where the written config points the LMS and the registry: the default ports of `creditbridge sandbox`
# and `creditbridge registry-sim`, so the commands printed at the end start them where it looks.
REGISTRY_DEFAULT_URL = "http://127.0.0.1:8770"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def run_settings(directory: Path, keys: Secrets, *, programme: str, sandbox_url: str = SANDBOX_WWWROOT,
                 registry_url: str = REGISTRY_DEFAULT_URL) -> Settings:
    """Built from scratch, never from the user's file or environment: the quickstart runs on the
    embedded defaults, whatever CREDITBRIDGE_DATABASE_URL or ./creditbridge.toml say."""
    return Settings.model_validate(_data(directory, keys, programme=programme, sandbox_url=sandbox_url,
                                         registry_url=registry_url))


def _data(directory: Path, keys: Secrets, *, programme: str, sandbox_url: str, registry_url: str) -> dict[str, Any]:
    d = directory.resolve()
    return {
        "moodle": {"url": sandbox_url, "token": keys.sandbox_token, "backoff_seconds": 0.0},
        "database": {"url": sqlite_url(d / "state.db")},
        "sync": {"programme": programme, "report_dir": str(d / "reports"), "username_key": keys.username_key},
        # Continuous mode (docs/scheduler.md): each delivery becomes a learning record right after its commit,
        # the worker evaluates the teacher and pushes the changed result within seconds.
        "webhooks": {"secrets": [keys.webhook_secret]},
        "pipeline": {"mode": "continuous", "poll_seconds": 0.2},
        "registry": {"target": "rest", "url": registry_url, "key_id": REGISTRY_KEY_ID,
                     "secret": keys.registry_secret, "export_dir": str(d / "exports"), "backoff_seconds": 0.1},
        "scheduler": {"roster_file": str(d / "province" / "roster.csv"),
                      "catalog_file": str(d / "province" / "catalog.csv")},
    }


HEADER = """\
# Written by `creditbridge quickstart`. Use it to look at the quickstart's results:
#   creditbridge --config {config} credits explain <ID number>
#   creditbridge --config {config} report
# The LMS and registry below are the local sandbox and simulator on their default ports; start them on
# the quickstart's own state with:
#   creditbridge sandbox --db {sandbox_db} --token <moodle.token below>
#   creditbridge registry-sim --db {registry_db} --secret <registry.secret below>
# The secrets here protect nothing but those local demo servers. For a real Moodle and registry, start
# from `creditbridge init` instead and give secrets through the environment (CREDITBRIDGE_MOODLE_TOKEN,
# CREDITBRIDGE_WEBHOOK_SECRET, CREDITBRIDGE_REGISTRY_SECRET), never in a file.

"""


def write_config(directory: Path, keys: Secrets, *, programme: str) -> Path:
    path = directory / "creditbridge.toml"
    d = directory.resolve()
    data = _data(directory, keys, programme=programme, sandbox_url=SANDBOX_WWWROOT, registry_url=REGISTRY_DEFAULT_URL)
    # Run-only tuning stays out: with this file a receiver processes each delivery as it comes, and
    # retries wait as long as the defaults say.
    del data["moodle"]["backoff_seconds"]
    del data["pipeline"]["poll_seconds"]
    del data["registry"]["backoff_seconds"]
    text = HEADER.format(config=path.resolve(), sandbox_db=d / "sandbox.db", registry_db=d / "registry-sim.db")
    write_private_text(path, text + tomli_w.dumps(data))  # 0600: it holds the username key and demo secrets
    # Checked the way every command will read it, so a file that would not load is a quickstart failure.
    load_settings(path, env={})
    return path
