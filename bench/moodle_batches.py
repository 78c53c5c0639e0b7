"""Bulk user creation through MoodleClient against a loopback fake Moodle with production semantics.

Prints calls and wall time for: batches of 100 with halving (creditbridge), and one call per user
(the baseline that needs no isolation), on the same data in the same run. Usage:
    python bench/moodle_batches.py [users] [bad_fraction]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from creditbridge.connector.encoding import decode_params
from creditbridge.connector.moodle import MoodleClient

INVALID = json.dumps({"exception": "core\\exception\\invalid_parameter_exception", "errorcode": "invalidparameter",
                      "message": "Invalid parameter value detected"})


def serve(bad: set[str]) -> tuple[ThreadingHTTPServer, dict[str, Any]]:
    state: dict[str, Any] = {"users": {}, "lock": threading.Lock()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            form = decode_params(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            with state["lock"]:
                if form["wsfunction"] == "core_user_get_users_by_field":
                    body = json.dumps([])
                elif any(u["username"] in bad for u in form["users"]):
                    body = INVALID  # one transaction: nobody created
                else:
                    out = []
                    for u in form["users"]:
                        uid = len(state["users"]) + 2
                        state["users"][u["username"]] = uid
                        out.append({"id": uid, "username": u["username"]})
                    body = json.dumps(out)
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, state


def run(n: int, bad_fraction: float, batch_size: int) -> tuple[int, int, int, float]:
    step = max(1, round(1 / bad_fraction)) if bad_fraction else n + 1
    users = [{"username": f"u{i:06d}", "firstname": "F", "lastname": "L", "email": f"u{i:06d}@example.org",
              "password": "Xx#12345", "idnumber": f"ID{i}"} for i in range(n)]
    bad = {u["username"] for i, u in enumerate(users) if i % step == step - 1}
    server, state = serve(bad)
    client = MoodleClient.from_url(f"http://127.0.0.1:{server.server_address[1]}", "benchtoken0123456789",
                                   batch_size=batch_size)
    started = time.perf_counter()
    result = client.create_users(users, precheck=False)
    elapsed = time.perf_counter() - started
    assert len(result.failed) == len(bad) and len(state["users"]) == n - len(bad)
    server.shutdown()
    return len(result.succeeded), len(result.failed), client.write_calls, elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    bad_fraction = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    ok, failed, calls, t = run(n, bad_fraction, 100)
    b_ok, b_failed, b_calls, b_t = run(n, bad_fraction, 1)
    print(f"users={n} bad={failed} (fraction {bad_fraction})")
    print(f"batches of 100 + halving: created={ok} isolated={failed} calls={calls} time={t:.2f}s")
    print(f"baseline one call/user:   created={b_ok} isolated={b_failed} calls={b_calls} time={b_t:.2f}s")
    print(f"ratio: calls {calls / b_calls:.3f}, time {t / b_t:.3f}")


if __name__ == "__main__":
    main()
