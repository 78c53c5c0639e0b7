"""Issue #14 item 11: two `push` at once on one store. The second stops at once with a clear `error:` (exit 2),
or with --wait runs after the first and finds nothing left to send; every result reaches the registry once;
no traceback. Real subprocesses against the registry simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_process import finish, first_stderr_line, gated, run_cli, start_cli, wait_until
from registry_helpers import SECRET, add_teachers, id_number, put_results, running_sim
from sqlalchemy import func, select

from creditbridge.store import Store
from creditbridge.store.models.registry import RegistrySubmission


def _sent(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(RegistrySubmission)
                        .where(RegistrySubmission.state == "sent")) or 0


def test_second_push_exits_at_once_and_a_waiting_one_sends_nothing_twice(store: Store, tmp_path: Path) -> None:
    add_teachers(store, list(range(30)))
    put_results(store, [{"teacher": id_number(n), "credits": 5} for n in range(30)])
    with running_sim(tmp_path) as sim:
        config = tmp_path / "creditbridge.toml"
        config.write_text(f'[registry]\ntarget = "rest"\nurl = "{sim.url}"\nbatch_size = 10\n'
                          "backoff_seconds = 0.01\ntimeout_seconds = 30\n", encoding="utf-8")
        env = {"CREDITBRIDGE_DATABASE_URL": store.url, "CREDITBRIDGE_REGISTRY_SECRET": SECRET}
        gate = gated(sim.app)  # the first push is held at its first batch, holding the store
        first = start_cli(config, "push", "--json", env=env)
        try:
            wait_until(lambda: _sent(store) == 10, what="the first push sending its first batch")
            second = run_cli(config, "push", "--json", env=env, timeout=30)
            waiting = start_cli(config, "push", "--json", "--wait", env=env)
            told = first_stderr_line(waiting)
            gate.set()
            first_done = finish(first)
            waited = finish(waiting)
        finally:
            gate.set()
            if first.poll() is None:
                first.kill()
        rows = sim.rows()

    assert second.code == 2 and second.stdout == "", second.output
    assert re.fullmatch(
        r'error: another "push" is running on this store \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, '
        rf'pid {first.pid} on [^)]+\); run "push" again when it has finished, or add --wait\n', second.stderr)
    assert re.search(r'waiting for another "push" to finish \(since .* UTC, pid \d+', told), told

    assert first_done.code == 0, first_done.output
    a, b = json.loads(first_done.stdout), json.loads(waited.stdout)
    assert (a["sent"], a["acknowledged"], a["pending"]) == (30, 30, 0)
    assert (b["sent"], b["built"]["created"], b["pending"]) == (0, 0, 0)
    assert waited.code == 0
    assert len(rows) == 30 and len({r["teacher"] for r in rows}) == 30  # each result once
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(RegistrySubmission)) == 30
    assert "Traceback" not in first_done.output + second.output + waited.output + told
