"""gunicorn's master imports the config module and the worker class; gevent workers are forked from it and only
then monkey-patch. A receiver module imported in the master would keep what it made at import from before the
patching (webhooks.resources' lock would be a real thread lock in a gevent worker), so the master loads none."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["creditbridge.webhooks.gunicorn_conf", "creditbridge.webhooks.gunicorn_worker"])
def test_what_the_master_loads_holds_no_receiver_module(module: str) -> None:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(proc.stdout)
    assert module in loaded
    receiver = [m for m in loaded if m.startswith("creditbridge.webhooks.") and m != module]
    assert receiver == []
