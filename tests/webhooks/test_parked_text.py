"""What a sender wrote reaches the operator's terminal escaped (attack report items 9 and 10): a parked delivery's
reason quotes the sender's username, which may be an ID number or carry terminal escape sequences; `intake
parked` and `intake replay` print it with control characters escaped and the ID number masked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from webhook_helpers import SECRET, payload, settings_for, signed

from creditbridge.cli.main import cli
from creditbridge.store import open_store
from creditbridge.webhooks.app import close_app, create_app

ID_USERNAME = "370101198312170001"


def test_parked_reason_from_the_sender_is_escaped_and_masked(tmp_path: Path, sqlite_url: str,
                                                             runner: CliRunner) -> None:
    open_store(sqlite_url).dispose()  # an empty store: the user is unknown, so the delivery is parked
    app = create_app({"SETTINGS": settings_for(sqlite_url)})
    app.config["WEBHOOKS_INLINE_MODE"] = "request"
    try:
        p = payload(userid=555556, username=f"{ID_USERNAME}\x1b]0;owned\x07\x1b[2J")
        body, headers = signed(p)
        assert app.test_client().post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    finally:
        close_app(app)
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n[webhooks]\nsecrets = ["{SECRET}"]\n', encoding="utf-8")
    for args in (["intake", "parked"], ["intake", "replay"]):
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        out = result.output
        assert "\x1b" not in out and "\x07" not in out and ID_USERNAME not in out, out
        assert "unknown Moodle user 555556 (3701************01\\x1b]0;owned\\x07\\x1b[2J)" in out, out
