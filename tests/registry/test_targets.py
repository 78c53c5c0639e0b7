"""Targets found through entry points; the REST target's errors; the import file read back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pydantic import SecretStr
from registry_helpers import id_number, record, running_sim

from creditbridge.connector.registry import (
    RegistryAuthError,
    RegistryConfigError,
    RegistryUnavailableError,
    Submission,
    load_target,
)
from creditbridge.connector.registry.file import HEADERS, FileTarget
from creditbridge.connector.registry.rest import RestTarget, batch_key
from creditbridge.settings.model import RegistrySettings


def sub(n: int, **over) -> Submission:
    return Submission(key=f"key-{n:08d}", action="submit", record=record(n, **over))


@pytest.mark.parametrize(("name", "cls"), [("rest", "RestTarget"), ("xapi", "XapiTarget"), ("file", "FileTarget")])
def test_builtin_targets_are_found_by_entry_point(name: str, cls: str, tmp_path: Path) -> None:
    settings = RegistrySettings(target=name, secret=SecretStr("s"), export_dir=str(tmp_path))
    target = load_target(name, settings)
    assert type(target).__name__ == cls
    target.close()


def test_unknown_target_names_the_installed_ones() -> None:
    with pytest.raises(RegistryConfigError, match=r"unknown registry target 'nowhere'.*file, rest, xapi"):
        load_target("nowhere", RegistrySettings())


def test_rest_target_submits_and_reads_per_record_outcomes(tmp_path: Path) -> None:
    with running_sim(tmp_path) as sim:
        target = RestTarget(sim.settings())
        outcomes = target.submit([sub(1), sub(2, hours=-3)])
        target.close()
    by_key = {o.key: o for o in outcomes}
    assert by_key["key-00000001"].status == "acknowledged"
    assert by_key["key-00000002"].status == "rejected"
    assert by_key["key-00000002"].reason.startswith("hours")


def test_rest_target_translates_auth_failure(tmp_path: Path) -> None:
    with running_sim(tmp_path) as sim:
        target = RestTarget(sim.settings(secret=SecretStr("not-the-secret")))
        with pytest.raises(RegistryAuthError) as e:
            target.submit([sub(1)])
        target.close()
    assert e.value.status == 401 and e.value.code == "bad_signature" and e.value.request_id
    assert not e.value.retryable
    assert "not-the-secret" not in str(e.value)


def test_rest_target_reports_retry_after_as_retryable(tmp_path: Path) -> None:
    with running_sim(tmp_path, REGISTRY_SIM_FAIL_RATE=1.0, REGISTRY_SIM_FAIL_MODES=("503",),
                     REGISTRY_SIM_RETRY_AFTER=3) as sim:
        target = RestTarget(sim.settings())
        with pytest.raises(RegistryUnavailableError) as e:
            target.submit([sub(1)])
        target.close()
    assert e.value.retryable and e.value.status == 503 and e.value.retry_after == 3


def test_rest_target_connection_refused_is_retryable() -> None:
    target = RestTarget(RegistrySettings(url="http://127.0.0.1:9", secret=SecretStr("s"), timeout_seconds=1))
    with pytest.raises(RegistryUnavailableError, match="connection failed"):
        target.submit([sub(1)])


def test_rest_target_needs_a_secret() -> None:
    with pytest.raises(RegistryConfigError, match="secret"):
        RestTarget(RegistrySettings())


def test_batch_key_is_the_same_for_the_same_submissions_in_any_order() -> None:
    assert batch_key([sub(1), sub(2)]) == batch_key([sub(2), sub(1)]) != batch_key([sub(1)])


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_file_target_writes_the_import_file(tmp_path: Path, fmt: str) -> None:
    target = FileTarget(RegistrySettings(target="file", export_dir=str(tmp_path), file_format=fmt))
    batch = [sub(1), Submission(key="key-void-1", action="void", record=record(2, version=2), supersedes="key-x"),
             sub(3, result="failed", credits=0)]
    outcomes = target.submit(batch)
    assert [o.status for o in outcomes] == ["acknowledged"] * 3
    (path,) = target.written
    assert path.suffix == f".{fmt}" and not list(tmp_path.glob("*.part"))
    if fmt == "xlsx":
        # Empty trailing cells are not written: pad to the header width.
        rows = [list(r) + [None] * (len(HEADERS) - len(r))
                for r in load_workbook(path, read_only=True).active.iter_rows(values_only=True)]
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    assert rows[0] == HEADERS
    first = dict(zip(HEADERS, rows[1], strict=True))
    assert first["身份证号"] == id_number(1)
    assert first["姓名"] == "教师1" and first["项目编号"] == "sd-2022" and first["考核结果"] == "合格"
    assert float(first["学时"]) == 50.0 and float(first["学分"]) == 5.0
    assert first["开始日期"] == "2022-01-01" and first["结束日期"] == "2022-12-31"
    assert dict(zip(HEADERS, rows[2], strict=True))["操作"] == "撤销"
    assert dict(zip(HEADERS, rows[3], strict=True))["考核结果"] == "不合格"
    # The same batch again rewrites the same file instead of adding a second one.
    target.submit(batch)
    assert len(list(tmp_path.iterdir())) == 1


def test_a_plain_string_error_body_keeps_its_reason() -> None:
    import responses

    from creditbridge.connector.http import make_session
    from creditbridge.connector.registry import transport
    from creditbridge.connector.registry.errors import RegistryProtocolError

    with responses.RequestsMock() as mock:
        mock.post("http://registry.test/api", status=400, json={"error": "record 37010219850101001X malformed"})
        with pytest.raises(RegistryProtocolError) as info:
            transport.send(make_session(), "POST", "http://registry.test/api", body={"a": 1}, timeout=5)
    assert info.value.status == 400
    assert "malformed" in info.value.message and "37010219850101001X" not in str(info.value)


@pytest.mark.parametrize("name", ["rest", "xapi"])
def test_http_targets_use_their_own_session_with_both_timeouts(name: str) -> None:
    import responses

    settings = RegistrySettings(target=name, url="http://registry.test", secret=SecretStr("s"), timeout_seconds=12)
    first, second = load_target(name, settings), load_target(name, settings)
    assert first._session is not second._session  # a worker's target never shares a session with another's
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("http://registry.test/api/v1/credit-records:batch", json={"results": []})
        mock.post("http://registry.test/xAPI/statements", status=204)
        first.submit([sub(1)])
        (call,) = mock.calls
    assert call.request.req_kwargs["timeout"] == (5.0, 12.0)  # connect: the smaller of 5 s and timeout_seconds
    assert first._session.get_adapter("http://registry.test").max_retries.total == 0  # resending is the outbox's
    first.close()
    second.close()
