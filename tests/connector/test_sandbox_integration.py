"""The client against the sandbox LMS over real HTTP on 127.0.0.1 (production-like answers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from creditbridge.cli.main import cli
from creditbridge.connector import errors
from creditbridge.connector.functions import REQUIRED_FUNCTIONS
from creditbridge.connector.moodle import MoodleClient


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("sandbox_server")


@pytest.fixture
def client(sandbox: Any) -> Iterator[MoodleClient]:
    with MoodleClient.from_url(sandbox.url, sandbox.token, batch_size=50, backoff_seconds=0) as c:
        yield c


def _user(n: int, **extra: Any) -> dict[str, Any]:
    return {"username": f"itest{n:03d}", "password": "Teach#2024a", "firstname": "Int", "lastname": f"Test{n}",
            "email": f"itest{n:03d}@example.org", "idnumber": f"IT-{n:03d}", **extra}


def test_site_info_lists_every_required_function(client: MoodleClient) -> None:
    info = client.get_site_info()
    assert info["sitename"]
    assert set(REQUIRED_FUNCTIONS) <= {f["name"] for f in info["functions"]}


def test_create_users_isolates_a_duplicate_email(client: MoodleClient) -> None:
    first = client.create_users([_user(1)])
    assert first.ok and first.succeeded[0][1]["id"] > 0
    batch = [_user(n) for n in range(2, 10)] + [_user(10, email="itest001@example.org")]

    checked = client.create_users(batch)
    assert [(u["username"], e.errorcode) for u, e in checked.failed] == [("itest010", "emailexists")]
    assert len(checked.succeeded) == 8

    # Without the pre-check the sandbox refuses the batch like production Moodle; halving finds the culprit.
    more = [_user(n) for n in range(11, 19)] + [_user(19, email="itest002@example.org")]
    split = client.create_users(more, precheck=False)
    assert [u["username"] for u, _ in split.failed] == ["itest019"]
    assert isinstance(split.failed[0][1], errors.InvalidParameterError | errors.DuplicateError)
    assert len(split.succeeded) == 8
    found = client.get_users_by_field("username", [f"itest{n:03d}" for n in range(1, 20)])
    assert len(found) == 1 + 8 + 8


def test_wrong_token_and_unknown_function(sandbox: Any, client: MoodleClient) -> None:
    with pytest.raises(errors.InvalidTokenError):
        MoodleClient.from_url(sandbox.url, "0123456789abcdef0123456789abcdef").get_site_info()
    with pytest.raises(errors.MoodleError) as info:
        client.call("local_nosuch_function")
    assert isinstance(info.value, errors.UnknownFunctionError | errors.FunctionNotInServiceError)


def test_xml_format(sandbox: Any) -> None:
    with MoodleClient.from_url(sandbox.url, sandbox.token, format="xml") as c:
        info = c.get_site_info()
    assert isinstance(info["functions"], list) and info["userid"]


def test_moodle_check_lists_no_missing_function(sandbox: Any, tmp_path: Any) -> None:
    config = tmp_path / "creditbridge.toml"
    config.write_text("[moodle]\nretries = 0\n", encoding="utf-8")
    env = {"CREDITBRIDGE_CONFIG": str(config), "CREDITBRIDGE_MOODLE_URL": sandbox.url,
           "CREDITBRIDGE_MOODLE_TOKEN": sandbox.token}
    result = CliRunner().invoke(cli, ["moodle", "check", "--json"], env=env)
    report = json.loads(result.stdout)
    assert report["ok"] and report["missing"] == []
    # A fresh sandbox, like a fresh Moodle 4.5, sends course welcome messages: not ready until they are off.
    assert result.exit_code == 1, result.output
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["welcome_default_on"]
    off = requests.post(f"{sandbox.url}/sandbox/admin/welcome", data={"wstoken": sandbox.token, "sendoption": "0"},
                        timeout=10)
    assert off.status_code == 200
    assert CliRunner().invoke(cli, ["moodle", "check", "--json"], env=env).exit_code == 0
