"""WSGI entry for gunicorn: `gunicorn creditbridge.webhooks.wsgi:app` (settings from $CREDITBRIDGE_CONFIG)."""

from __future__ import annotations

import os

from creditbridge.webhooks.app import create_app

app = create_app({"CONFIG_PATH": os.environ.get("CREDITBRIDGE_CONFIG")})
