"""Sandbox LMS throughput through the real client over HTTP: bulk user creation, lookups, enrolment, paging.

Baseline (same run): one core_webservice_get_site_info round trip. Figures are printed per operation with
their ratio to that baseline; the recorded real Moodle (limits.json) took 7368 ms for 500 users in one call.

    python bench/sandbox_throughput.py [--users 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from creditbridge.connector.moodle import MoodleClient
from creditbridge.sandbox.app import create_app, state_of
from creditbridge.sandbox.server import serve_in_thread


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    app = create_app({"SANDBOX_TOKEN": "bench"})
    handle = serve_in_thread(app)
    try:
        with MoodleClient.from_url(handle.url, "bench", batch_size=500, backoff_seconds=0) as client:
            samples = []
            for _ in range(20):
                t = time.perf_counter()
                client.get_site_info()
                samples.append(time.perf_counter() - t)
            base = statistics.median(samples)
            users = [{"username": f"b{i:07d}", "password": "Teach#2024a", "firstname": "B", "lastname": str(i),
                      "email": f"b{i:07d}@example.org", "customfields": [{"type": "schoolcode", "value": "S1"}]}
                     for i in range(args.users)]
            figures = []
            t = time.perf_counter()
            created = client.create_users(users, precheck=False)
            figures.append(("create_users (500 per call), per user", (time.perf_counter() - t) / args.users))
            ids = [u["id"] for _, u in created.succeeded]
            t = time.perf_counter()
            found = client.get_users_by_field("username", [u["username"] for u in users])
            figures.append(("get_users_by_field, per user", (time.perf_counter() - t) / args.users))
            [(_, course)] = client.create_courses([{"fullname": "B", "shortname": "B", "categoryid": 1}]).succeeded
            t = time.perf_counter()
            client.enrol_users([{"roleid": 5, "userid": i, "courseid": course["id"]} for i in ids])
            figures.append(("enrol_users, per enrolment", (time.perf_counter() - t) / args.users))
            t = time.perf_counter()
            listed = client.get_enrolled_users(course["id"], page_size=500, userfields=["id", "username"])
            figures.append(("get_enrolled_users (pages of 500), per user", (time.perf_counter() - t) / args.users))
        assert len(found) == len(listed) == args.users
        print(f"baseline: site_info round trip {base * 1000:.2f} ms (median of 20)")
        for name, seconds in figures:
            print(f"{name}: {seconds * 1000:.3f} ms  (x{seconds / base:.2f} baseline)")
        print(f"500 users in one call: sandbox {figures[0][1] * 500 * 1000:.0f} ms, recorded Moodle 7368 ms")
    finally:
        handle.stop()
        state_of(app).close()


if __name__ == "__main__":
    main()
