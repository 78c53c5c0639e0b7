"""`creditbridge registry-sim`: the simulated provincial registry on a local port."""

from __future__ import annotations

import click

from creditbridge import CreditbridgeError
from creditbridge.cli.http_server import serve_until_interrupted
from creditbridge.registry_sim.app import create_app


@click.command("registry-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8770, show_default=True, type=int)
@click.option("--db", "db_path", default="registry-sim.db", show_default=True,
              help='SQLite file keeping what the registry received (":memory:" for none).')
@click.option("--key-id", default="creditbridge", show_default=True, help="Accepted signing key id.")
@click.option("--secret", envvar="CREDITBRIDGE_REGISTRY_SECRET", required=True,
              help="Shared HMAC secret (or $CREDITBRIDGE_REGISTRY_SECRET).")
@click.option("--fail-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of batch calls that fail on purpose (503, timeout or dropped connection).")
@click.option("--max-inflight", default=8, show_default=True, type=int, help="Concurrent batches before 429.")
def registry_sim_command(host: str, port: int, db_path: str, key_id: str, secret: str, fail_rate: float,
                         max_inflight: int) -> None:
    """Run the provincial REST credit-registry simulator (API in docs/registry-api.md)."""

    app = create_app({"REGISTRY_SIM_DB": db_path, "REGISTRY_SIM_KEYS": {key_id: secret},
                      "REGISTRY_SIM_FAIL_RATE": fail_rate, "REGISTRY_SIM_MAX_INFLIGHT": max_inflight})
    try:
        serve_until_interrupted(app, host, port, announce=f"registry-sim listening on {{url}} (db {db_path})")
    except OSError as e:
        raise CreditbridgeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


COMMANDS = [registry_sim_command]
