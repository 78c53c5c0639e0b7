"""The PHP plugin: every file parses, its payload keys are the schema's, and it signs like the receiver checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from webhook_helpers import OLD_SECRET, SECRET, payload, settings_for, signed

from creditbridge.connector.functions import PLUGIN_FUNCTIONS_SINCE, READINESS_FUNCTION, WELCOME_COURSES_FUNCTION
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.payload import SCHEMA_PATH, json_schema, webhook_id

PLUGIN = Path(__file__).resolve().parents[2] / "local_creditbridge"
PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="php-cli not installed (apt-get install -y php-cli; .ci/run does)")
PHP_FILES = sorted(PLUGIN.rglob("*.php"))


def test_committed_schema_matches_model():
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == json_schema()


def test_plugin_has_moodle_layout():
    for rel in ("version.php", "db/events.php", "db/services.php", "db/access.php", "classes/observer.php",
                "classes/collector.php", "classes/task/send_webhook.php", "classes/payload.php",
                "classes/delivery_policy.php", "classes/course_filter.php", "classes/readiness.php",
                "classes/external/get_site_readiness.php", "classes/external/configure_enrolment.php",
                "classes/external/get_courses_sending_welcome.php",
                "classes/enrolment_policy.php", "classes/privacy/provider.php", "settings.php",
                "lang/en/local_creditbridge.php", "lang/zh_cn/local_creditbridge.php",
                "tests/standalone_bootstrap.php", "tests/phpunit_standalone.xml", "tests/generator/lib.php"):
        assert (PLUGIN / rel).is_file(), rel
    version = (PLUGIN / "version.php").read_text()
    assert "$plugin->requires  = 2023042400" in version and "$plugin->version   = 2026120603" in version
    events = (PLUGIN / "db/events.php").read_text()
    assert events.count("'internal'  => false") == 3
    tests = {p.parent.name for p in PLUGIN.glob("tests/*/*_test.php")}
    assert tests == {"course_completed", "course_module_completion_updated", "user_graded", "task", "privacy",
                     "external"}
    standalone = {p.name for p in PLUGIN.glob("tests/*_test.php")}
    assert standalone == {"payload_test.php", "delivery_policy_test.php", "course_filter_test.php",
                          "enrolment_policy_test.php"}
    listed = set(re.findall(r"<file>([^<]+)</file>", (PLUGIN / "tests/phpunit_standalone.xml").read_text()))
    assert listed == standalone  # a standalone test not listed would never run in CI


def _lang_keys(lang: str) -> set[str]:
    text = (PLUGIN / f"lang/{lang}/local_creditbridge.php").read_text(encoding="utf-8")
    return set(re.findall(r"^\$string\['([^']+)'\]", text, re.M))


def _golden_payloads() -> list[dict]:
    pairs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(PLUGIN.glob("tests/fixtures/golden/*.json"))]
    return [p["expected"] for p in pairs if p["expected"] is not None]


def test_php_payload_keys_match_schema():
    """What the PHP builder emits (its golden outputs, checked by payload_test.php) uses exactly the schema's keys."""
    schema = json_schema()
    payloads = _golden_payloads()
    assert {k for p in payloads for k in p} == set(schema["properties"])
    for p in payloads:
        assert set(schema["required"]) <= set(p)
    defs = schema["$defs"]
    for key, model in (("user", "MoodleUser"), ("course", "MoodleCourse"), ("activity", "MoodleActivity"),
                       ("gradeitem", "MoodleGradeItem")):
        shapes = {frozenset(p[key]) for p in payloads if p.get(key) is not None}
        assert shapes == {frozenset(defs[model]["properties"])}, key
    lang_en = _lang_keys("en")
    assert lang_en == _lang_keys("zh_cn") and len(lang_en) >= 20
    used = set(re.findall(r"get_string\('([\w:]+)', 'local_creditbridge'",
                          "".join(p.read_text() for p in PLUGIN.rglob("*.php"))))
    used |= set(re.findall(r"'(privacy:metadata:[\w:]+)'", (PLUGIN / "classes/privacy/provider.php").read_text()))
    assert used <= lang_en, used - lang_en


def test_readiness_capabilities_are_the_documented_ones():
    """classes/readiness.php asks about exactly the capabilities docs/moodle.md tells an administrator to give."""
    src = (PLUGIN / "classes/readiness.php").read_text()
    block = src[src.index("const CAPABILITIES = ["):]
    php_caps = re.findall(r"'([a-z]+/[a-z_]+:[a-z_]+)'", block[: block.index("];")])
    doc = (PLUGIN.parent / "docs/moodle.md").read_text(encoding="utf-8")
    table = doc[doc.index("| capability | why |"):]
    table = table[: table.index("\n\n")]
    # The plugin's own capability is needed to ask, not asked about.
    documented = [c for line in table.splitlines() if "not** needed" not in line
                  for c in re.findall(r"`([a-z]+/[a-z_]+:[a-z_]+)`", line) if not c.startswith("local/creditbridge:")]
    assert len(php_caps) == len(set(php_caps))
    assert set(php_caps) == set(documented)


PHP_DECLARATIONS = """
define('MOODLE_INTERNAL', 1); define('RISK_CONFIG', 2); define('CONTEXT_SYSTEM', 10);
require $argv[1]; require $argv[2];
echo json_encode(['functions' => $functions, 'capabilities' => $capabilities]);
"""


def _declarations() -> dict:
    r = subprocess.run([PHP, "-r", PHP_DECLARATIONS, str(PLUGIN / "db/services.php"), str(PLUGIN / "db/access.php")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@needs_php
def test_readiness_function_is_declared_as_the_contract_says():
    decl = _declarations()
    fn = decl["functions"]["local_creditbridge_get_site_readiness"]
    assert (fn["classname"], fn["type"], fn["capabilities"]) == (
        "local_creditbridge\\external\\get_site_readiness", "read", "local/creditbridge:viewreadiness")
    cap = decl["capabilities"]["local/creditbridge:viewreadiness"]
    assert (cap["riskbitmask"], cap["contextlevel"], cap["archetypes"]) == (2, 10, [])


@needs_php
def test_the_welcome_read_is_declared_read_only_and_every_function_sync_calls_is_declared():
    decl = _declarations()
    fn = decl["functions"][WELCOME_COURSES_FUNCTION]
    assert (fn["classname"], fn["type"], fn["capabilities"]) == (
        "local_creditbridge\\external\\get_courses_sending_welcome", "read", "moodle/course:enrolreview")
    assert set(decl["functions"]) == {READINESS_FUNCTION, *PLUGIN_FUNCTIONS_SINCE}


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


POLICY = """
require $argv[1];
$out = [];
foreach (json_decode(stream_get_contents(STDIN), true) as $a) {
    $out[] = \\local_creditbridge\\delivery_policy::decide($a['status'], '', $a['body'], 1, 12);
}
echo json_encode($out);
"""


def _answers(tmp_path: Path) -> list[tuple[str, int, str]]:
    """(case, status, body) as the real receiver answers them (Flask test client, SQLite)."""
    out: list[tuple[str, int, str]] = []
    app = create_app({"SETTINGS": settings_for(f"sqlite:///{tmp_path / 'state.db'}"),
                      "WEBHOOKS_PROCESS_INLINE": False})
    c = app.test_client()
    cases = {
        "stored": signed(payload()),
        "duplicate": signed(payload()),
        "wrong_secret": signed(payload(objectid=2), secret=OLD_SECRET),
        "clock_behind": signed(payload(objectid=3), when=datetime.now(UTC) - timedelta(minutes=10)),
        "clock_ahead": signed(payload(objectid=4), when=datetime.now(UTC) + timedelta(minutes=10)),
        "bad_body": signed({**payload(objectid=5), "colour": "red"}),
    }
    for name, (body, headers) in cases.items():
        r = c.post("/webhooks/moodle", data=body, headers=headers)
        out.append((name, r.status_code, r.get_data(as_text=True)))
    close_app(app)
    app = create_app({"SETTINGS": settings_for(f"sqlite:///{tmp_path / 'other.db'}", secrets=[]),
                      "WEBHOOKS_PROCESS_INLINE": False})
    body, headers = signed(payload(objectid=6), secret=SECRET)
    r = app.test_client().post("/webhooks/moodle", data=body, headers=headers)
    out.append(("no_secret_configured", r.status_code, r.get_data(as_text=True)))
    close_app(app)
    return out


@needs_php
def test_plugin_delivery_policy_reads_the_real_receivers_answers(tmp_path):
    """The plugin's retry policy, fed the receiver's real answers: a stored or duplicate delivery is done, a body
    the receiver refuses is dropped, a wrong secret, a clock off by 10 minutes and a receiver without secrets are
    configuration errors retried with backoff, each named for the administrator."""
    answers = _answers(tmp_path)
    r = subprocess.run([PHP, "-r", POLICY, str(PLUGIN / "classes/delivery_policy.php")], capture_output=True,
                       text=True, timeout=30,
                       input=json.dumps([{"status": s, "body": b} for _, s, b in answers]))
    assert r.returncode == 0, r.stderr
    decided = {name: d for (name, _, _), d in zip(answers, json.loads(r.stdout), strict=True)}
    got = {name: (d["action"], d["severity"]) for name, d in decided.items()}
    assert got == {
        "stored": ("done", "ok"), "duplicate": ("done", "ok"),
        "wrong_secret": ("retry", "config"), "clock_behind": ("retry", "config"), "clock_ahead": ("retry", "config"),
        "bad_body": ("drop", "refused"), "no_secret_configured": ("retry", "config"),
    }
    assert "secret" in decided["wrong_secret"]["message"]
    assert "clock" in decided["clock_behind"]["message"] and "clock" in decided["clock_ahead"]["message"]
    assert "webhooks.secrets" in decided["no_secret_configured"]["message"]
