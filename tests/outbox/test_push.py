"""push() end to end against the live registry simulator: versions, corrections, voids, rejections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from registry_helpers import SECRET, add_teachers, id_number, put_results, running_sim, withdraw_result
from sqlalchemy import select

from creditbridge.cli.main import cli
from creditbridge.connector.registry import RegistryAuthError
from creditbridge.connector.registry.rest import RestTarget
from creditbridge.outbox.service import push
from creditbridge.settings import load_settings
from creditbridge.store import Store
from creditbridge.store.models.registry import RegistryAudit, RegistrySubmission


def settings_for(sim: Any, db_url: str, **registry: Any) -> Any:
    reg = {"target": "rest", "url": sim.url, "secret": SECRET, "timeout_seconds": 5.0, "backoff_seconds": 0.01,
           "batch_size": 50, **registry}
    return load_settings(None, env={}, overrides={"database": {"url": db_url}, "registry": reg})


def states(store: Store) -> dict[tuple[str, int], str]:
    with store.session() as s:
        return {(r.teacher, r.version): r.state for r in s.scalars(select(RegistrySubmission))}


def test_push_sends_each_result_once_and_nothing_again(store: Store, tmp_path: Path) -> None:
    add_teachers(store, list(range(120)))
    put_results(store, [{"teacher": id_number(n), "credits": 5 + n % 3} for n in range(120)])
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url)
        first = push(settings, store)
        assert (first.sent, first.acknowledged, first.rejected, first.pending) == (120, 120, 0, 0)
        calls = sim.state.calls
        second = push(settings, store)
        assert (second.sent, second.acknowledged, second.pending) == (0, 0, 0)
        assert sim.state.calls == calls  # acknowledged records are never sent again
        rows = sim.rows()
    assert len(rows) == 120
    assert {r["teacher"] for r in rows} == {id_number(n) for n in range(120)}
    assert rows[0]["payload"]["name"] == "教师0"  # the roster's name travels with the record
    assert set(states(store).values()) == {"acknowledged"}


def test_correction_supersedes_and_withdrawal_voids(store: Store, tmp_path: Path) -> None:
    add_teachers(store, [1, 2, 3])
    put_results(store, [{"teacher": id_number(n)} for n in (1, 2, 3)])
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url)
        push(settings, store)
        put_results(store, [{"teacher": id_number(1), "credits": 7}])  # a correction
        withdraw_result(store, id_number(2))  # a withdrawn result
        result = push(settings, store)
        # `push --json` and the scheduler's ledger: these keys, in this order.
        assert list(result.as_json().items()) == [
            ("sent", 2), ("acknowledged", 2), ("rejected", 0), ("pending", 0),
            ("built", {"created": 1, "corrections": 1, "voids": 1, "unchanged": 1, "dropped_unsent": 0}),
            ("target", "rest"), ("gave_up", False)]
        sim_states = {(r["teacher"], r["version"]): r["state"] for r in sim.rows()}
    assert sim_states == {(id_number(1), 1): "superseded", (id_number(1), 2): "active",
                          (id_number(2), 1): "voided", (id_number(2), 2): "void", (id_number(3), 1): "active"}
    ours = states(store)
    assert ours[(id_number(1), 1)] == "superseded" and ours[(id_number(1), 2)] == "acknowledged"
    assert ours[(id_number(2), 1)] == "voided"
    with store.session() as s:
        trail = [(a.event, a.to_state) for a in s.scalars(
            select(RegistryAudit).join(RegistrySubmission, RegistryAudit.submission_id == RegistrySubmission.id)
            .where(RegistrySubmission.teacher == id_number(1), RegistrySubmission.version == 1)
            .order_by(RegistryAudit.id))]
    assert trail == [("created", "pending"), ("sent", "sent"), ("acknowledged", "acknowledged"),
                     ("superseded", "superseded")]


def test_unsent_version_is_overtaken_without_being_sent(store: Store, tmp_path: Path) -> None:
    add_teachers(store, [5])
    put_results(store, [{"teacher": id_number(5)}])
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url)
        plan = push(settings, store, dry_run=True)  # builds nothing durable
        assert states(store) == {}
        # `push --dry-run --json`: its own keys, in this order.
        assert list(plan.as_json().items()) == [
            ("dry_run", True), ("sent", 0), ("acknowledged", 0), ("rejected", 0), ("pending", 1), ("would_send", 1),
            ("built", {"created": 1, "corrections": 0, "voids": 0, "unchanged": 0, "dropped_unsent": 0}),
            ("target", "rest")]
        from creditbridge.outbox.build import build

        with store.session() as s:
            build(s, provider="x")
        put_results(store, [{"teacher": id_number(5), "hours": 60}])
        push(settings, store)
        assert [r["version"] for r in sim.rows()] == [2]
    assert states(store) == {(id_number(5), 1): "superseded", (id_number(5), 2): "acknowledged"}


def test_rejections_are_kept_with_their_reason_and_not_resent(store: Store, tmp_path: Path, caplog) -> None:
    add_teachers(store, [1])
    add_teachers(store, [2], programme="zz-1999")
    put_results(store, [{"teacher": id_number(1)}, {"teacher": id_number(2), "programme": "zz-1999"},
                        {"teacher": id_number(3)}])  # 3: not on the roster, so no name
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url)
        result = push(settings, store)
        assert (result.acknowledged, result.rejected, result.pending) == (1, 2, 0)
        again = push(settings, store)
        assert again.sent == 0
    with store.session() as s:
        reasons = {r.teacher: r.reason for r in
                   s.scalars(select(RegistrySubmission).where(RegistrySubmission.state == "rejected"))}
    assert "unknown programme" in reasons[id_number(2)]
    assert reasons[id_number(3)].startswith("name")
    # The rejection is logged, with the ID number masked.
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 2
    assert not any(id_number(n) in m for m in logged for n in (2, 3))
    assert any(id_number(2)[:4] in m and id_number(2)[-2:] in m for m in logged)


def test_cli_push_json_and_dry_run(runner, tmp_path: Path, sqlite_url: str) -> None:
    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    add_teachers(store, list(range(4)))
    put_results(store, [{"teacher": id_number(n)} for n in range(4)])
    with running_sim(tmp_path) as sim:
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "{sim.url}"\nsecret = "{SECRET}"\n',
                       encoding="utf-8")
        dry = runner.invoke(cli, ["--config", str(cfg), "push", "--dry-run", "--json"])
        assert dry.exit_code == 0, dry.output
        import json

        assert json.loads(dry.output)["would_send"] == 4
        assert sim.rows() == []
        real = runner.invoke(cli, ["--config", str(cfg), "push", "--json"])
        assert real.exit_code == 0, real.output
        doc = json.loads(real.output)
        assert {k: doc[k] for k in ("sent", "acknowledged", "rejected", "pending")} == \
            {"sent": 4, "acknowledged": 4, "rejected": 0, "pending": 0}
        text = runner.invoke(cli, ["--config", str(cfg), "push"])
        assert "sent 0, acknowledged 0, rejected 0, pending 0" in text.output
    store.dispose()


def test_wrong_secret_is_a_clean_error_and_keeps_the_outbox(runner, tmp_path: Path, sqlite_url: str) -> None:
    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    put_results(store, [{"teacher": id_number(1)}])
    with running_sim(tmp_path) as sim:
        cfg = tmp_path / "creditbridge.toml"
        cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "{sim.url}"\nsecret = "wrong"\n',
                       encoding="utf-8")
        r = runner.invoke(cli, ["--config", str(cfg), "push"])
        assert r.exit_code == 2
        assert "signature" in r.output and "wrong" not in r.output.replace("signature does not match", "")
        assert sim.rows() == []
    assert states(store) == {(id_number(1), 1): "sent"}  # resent with the same key next time
    store.dispose()


class _CrashAfterSending(RestTarget):
    """The real REST target, but the process 'dies' right after the registry answered."""

    def submit(self, batch):  # type: ignore[no-untyped-def]
        super().submit(batch)
        raise KeyboardInterrupt("killed between send and acknowledgement")


def test_crash_between_send_and_acknowledgement_is_harmless(store: Store, tmp_path: Path) -> None:
    add_teachers(store, list(range(10)))
    put_results(store, [{"teacher": id_number(n)} for n in range(10)])
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url, batch_size=4)
        with pytest.raises(KeyboardInterrupt):
            push(settings, store, target=_CrashAfterSending(settings.registry))
        assert len(sim.rows()) == 4  # the registry has the first batch ...
        assert list(states(store).values()).count("sent") == 4  # ... we only know it went out
        result = push(settings, store)
        assert (result.sent, result.acknowledged, result.pending) == (10, 10, 0)
        assert sim.state.replays == 1  # the first batch was resent under its old key and answered as before
        assert len(sim.rows()) == 10
    assert set(states(store).values()) == {"acknowledged"}


def test_transient_failures_back_off_honouring_retry_after_then_wait_for_next_push(
        store: Store, tmp_path: Path) -> None:
    add_teachers(store, [1])
    put_results(store, [{"teacher": id_number(1)}])
    with running_sim(tmp_path, REGISTRY_SIM_FAIL_RATE=1.0, REGISTRY_SIM_FAIL_MODES=("503",),
                     REGISTRY_SIM_RETRY_AFTER=2) as sim:
        settings = settings_for(sim, store.url, retries=3, backoff_seconds=0.01)
        waits: list[float] = []
        result = push(settings, store, sleep=waits.append)
        assert sim.state.calls == 4  # the first try and three resends
    assert len(waits) == 3 and all(w >= 2 for w in waits)  # never sooner than Retry-After
    assert result.gave_up is True and result.pending == 1 and result.acknowledged == 0
    assert states(store) == {(id_number(1), 1): "sent"}


def test_fatal_errors_are_not_retried(store: Store, tmp_path: Path) -> None:
    put_results(store, [{"teacher": id_number(1)}])
    with running_sim(tmp_path) as sim:
        settings = settings_for(sim, store.url, secret="wrong-secret", retries=5)
        with pytest.raises(RegistryAuthError):
            push(settings, store, sleep=lambda _s: pytest.fail("slept before a fatal error"))
        assert sim.state.refused == 1  # one attempt, no resend
        assert sim.state.calls == 0


def test_summary_lists_rejected_and_pending_for_the_report(store: Store, tmp_path: Path) -> None:
    from creditbridge.outbox.service import summary

    add_teachers(store, [1, 2])
    put_results(store, [{"teacher": id_number(1)}, {"teacher": id_number(2), "hours": 5000}])
    with running_sim(tmp_path) as sim:
        push(settings_for(sim, store.url), store)
    put_results(store, [{"teacher": id_number(1), "credits": 2}])  # a correction not pushed yet
    with store.session() as s:
        from creditbridge.outbox.build import build

        build(s, provider="creditbridge")
    got = summary(store)
    assert got["by_state"] == {"acknowledged": 1, "rejected": 1, "pending": 1}
    assert [(r["teacher"], r["version"]) for r in got["pending"]] == [(id_number(1), 2)]
    assert got["rejected"][0]["teacher"] == id_number(2) and got["rejected"][0]["reason"].startswith("hours")


def test_push_to_the_import_file_target(store: Store, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    add_teachers(store, list(range(7)))
    put_results(store, [{"teacher": id_number(n), "passed": n != 3, "credits": 0 if n == 3 else 5}
                        for n in range(7)])
    out = tmp_path / "exports"
    settings = load_settings(None, env={}, overrides={"database": {"url": store.url}, "registry": {
        "target": "file", "export_dir": str(out), "batch_size": 1000}})
    result = push(settings, store)
    assert (result.sent, result.acknowledged, result.pending) == (7, 7, 0)
    (path,) = out.glob("credit-records-*.xlsx")
    rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("身份证号", "姓名") and len(rows) == 8
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[id_number(3)][10] == "不合格" and by_id[id_number(4)][10] == "合格"
    assert push(settings, store).sent == 0
    assert len(list(out.iterdir())) == 1


def test_cli_push_with_no_registry_running_fails_cleanly_and_keeps_the_outbox(runner, tmp_path: Path,
                                                                             sqlite_url: str) -> None:
    import json
    import socket

    from creditbridge.store import open_store

    store = open_store(sqlite_url)
    add_teachers(store, [1])
    put_results(store, [{"teacher": id_number(1)}])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "creditbridge.toml"
    cfg.write_text(f'[database]\nurl = "{sqlite_url}"\n[registry]\nurl = "http://127.0.0.1:{port}"\n'
                   f'secret = "{SECRET}"\nretries = 1\nbackoff_seconds = 0.01\n', encoding="utf-8")
    text = runner.invoke(cli, ["--config", str(cfg), "push"])
    assert text.exit_code == 2, text.output
    assert "error: registry unavailable" in text.stderr and "Traceback" not in text.output
    as_json = runner.invoke(cli, ["--config", str(cfg), "push", "--json"])
    assert as_json.exit_code == 2
    doc = json.loads(as_json.stdout)
    assert doc["gave_up"] is True and doc["pending"] == 1 and doc["acknowledged"] == 0
    assert id_number(1) not in text.output + as_json.output
    assert states(store) == {(id_number(1), 1): "sent"}
    store.dispose()
