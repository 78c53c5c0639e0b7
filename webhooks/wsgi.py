"""WSGI entry for gunicorn: `gunicorn creditbridge.webhooks.wsgi:app` (settings from $CREDITBRIDGE_CONFIG).

`creditbridge serve` migrates the store before starting gunicorn and says so in $CREDITBRIDGE_MIGRATED, so
the workers skip the schema check; started any other way, each worker checks it on first use.
"""

from __future__ import annotations

import os

from creditbridge.webhooks.app import create_app

app = create_app({"CONFIG_PATH": os.environ.get("CREDITBRIDGE_CONFIG"),
                  "STORE_MIGRATE": os.environ.get("CREDITBRIDGE_MIGRATED") != "1"})
