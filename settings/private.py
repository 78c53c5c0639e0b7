"""Files that hold secrets or personal data: created readable by their owner only (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, set before the first byte is written (a new file is created
    with it; an existing one, emptied by O_TRUNC, is chmod-ed before the text goes in)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(text)


def new_username_key() -> str:
    """A random key for sync.username_key: 256 bits, URL-safe characters (no TOML escaping needed)."""
    return secrets.token_urlsafe(32)
