"""The PHP plugin: every file parses, its payload keys are the schema's, and it signs like the receiver checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from creditbridge.webhooks.payload import SCHEMA_PATH, json_schema, webhook_id

PLUGIN = Path(__file__).resolve().parents[2] / "local_creditbridge"
PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="php-cli not installed (apt-get install -y php-cli; .ci/run does)")
PHP_FILES = sorted(PLUGIN.rglob("*.php"))


def test_committed_schema_matches_model():
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == json_schema()


def test_plugin_has_moodle_layout():
    for rel in ("version.php", "db/events.php", "classes/observer.php", "classes/task/send_webhook.php",
                "classes/payload.php", "classes/privacy/provider.php", "settings.php",
                "lang/en/local_creditbridge.php", "lang/zh_cn/local_creditbridge.php"):
        assert (PLUGIN / rel).is_file(), rel
    assert "$plugin->requires  = 2022112800" in (PLUGIN / "version.php").read_text()
    events = (PLUGIN / "db/events.php").read_text()
    assert events.count("'internal'  => false") == 3
    tests = {p.parent.name for p in PLUGIN.glob("tests/*/*_test.php")}
    assert tests == {"course_completed", "course_module_completion_updated", "user_graded"}


def _keys(block: str) -> set[str]:
    return set(re.findall(r"^\s*'(\w+)' =>", block, re.M))


def test_php_payload_keys_match_schema():
    src = (PLUGIN / "classes/payload.php").read_text()
    top = src[src.index("return [\n            'event'"):]
    top = top[: top.index("];\n    }")]
    props = json_schema()["properties"]
    assert _keys(top) == set(props)
    defs = json_schema()["$defs"]
    for php_key, model in (("user", "MoodleUser"), ("course", "MoodleCourse")):
        inner = re.search(rf"'{php_key}' => \[([^\]]*)\]", top).group(1)
        assert set(re.findall(r"'(\w+)' =>", inner)) == set(defs[model]["properties"]), php_key
    activity = re.search(r"\$activity = \[([^\]]*)\]", src).group(1)
    assert set(re.findall(r"'(\w+)' =>", activity)) == set(defs["MoodleActivity"]["properties"])
    lang_en = _keys((PLUGIN / "lang/en/local_creditbridge.php").read_text().replace("$string[", ""))
    lang_zh = _keys((PLUGIN / "lang/zh_cn/local_creditbridge.php").read_text().replace("$string[", ""))
    assert lang_en == lang_zh


@needs_php
@pytest.mark.parametrize("path", PHP_FILES, ids=[str(p.relative_to(PLUGIN)) for p in PHP_FILES])
def test_php_lint(path):
    r = subprocess.run([PHP, "-l", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_php
def test_php_signature_and_id_verify_in_python():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"a": "完成"}, ensure_ascii=False)
    ts = int(datetime.now(UTC).timestamp())
    script = (f"require '{PLUGIN / 'classes/payload.php'}';"
              "$p = ['site' => 'http://127.0.0.1:8765', 'eventname' => '\\\\core\\\\event\\\\course_completed',"
              " 'objectid' => 1, 'timecreated' => 1795385698, 'user' => ['id' => 16]];"
              "$id = \\local_creditbridge\\payload::webhook_id($p);"
              f"echo $id, \"\\n\", \\local_creditbridge\\payload::sign('{secret}', $id, {ts}, $argv[1]);")
    r = subprocess.run([PHP, "-r", script, body], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    wid, sig = r.stdout.split("\n")
    assert wid == webhook_id("http://127.0.0.1:8765", "\\core\\event\\course_completed", 1, 1795385698, 16)
    Webhook(secret).verify(body.encode(), {"webhook-id": wid, "webhook-timestamp": str(ts),
                                           "webhook-signature": sig}, json_parse=False)
