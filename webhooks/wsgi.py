"""WSGI entry for gunicorn: `gunicorn creditbridge.webhooks.wsgi:app` (settings from $CREDITBRIDGE_CONFIG).

`creditbridge serve` migrates the store before starting gunicorn and says so in $CREDITBRIDGE_MIGRATED, so
the workers skip the schema check; started any other way, each worker checks it on first use.
"""

from __future__ import annotations

import os

from creditbridge.redact import install_excepthooks, install_log_redaction
from creditbridge.webhooks.app import create_app

app = create_app({"CONFIG_PATH": os.environ.get("CREDITBRIDGE_CONFIG"),
                  "STORE_MIGRATE": os.environ.get("CREDITBRIDGE_MIGRATED") != "1"})
# gunicorn set up its error and access logs before loading this module; Flask adds its handler on first use
# of app.logger. Mask on all of them (and on the last-resort handler that prints the app's own warnings).
app.logger  # noqa: B018
install_log_redaction()
install_excepthooks()
