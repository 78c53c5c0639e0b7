"""intake status / parked / replay / import through the CLI, as a user runs them."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from cli_process import sheet_processes
from openpyxl import Workbook
from sqlalchemy import select
from webhook_helpers import ID_NUMBER, payload, seed, signed

from creditbridge.cli.main import cli
from creditbridge.store import open_store
from creditbridge.store.models.core import LearningRecordRow, Teacher
from creditbridge.webhooks.app import close_app, create_app
from creditbridge.webhooks.payload import WebhookPayload


@pytest.fixture
def config(tmp_path, db_url):
    path = tmp_path / "creditbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[webhooks]\nsecrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]\n')
    return str(path)


def test_status_parked_replay(runner, config, db_url):
    store = open_store(db_url)
    app = create_app({"CONFIG_PATH": config})
    c = app.test_client()
    for p in (payload(), payload(userid=99, username="nobody", objectid=5)):
        body, headers = signed(p)
        assert c.post("/webhooks/moodle", data=body, headers=headers).status_code == 202
    c.post("/webhooks/moodle", data=body, headers=headers)  # duplicate
    c.post("/webhooks/moodle", data=b"{}", headers={})  # rejected
    close_app(app)
    # The course exists only now: the first delivery parked on the course, the second on the user.
    r = runner.invoke(cli, ["--config", config, "intake", "parked", "--json"])
    assert r.exit_code == 0, r.output
    reasons = sorted(p["reason"] for p in json.loads(r.output))
    assert reasons == ["unknown Moodle user 16 (tch200001)", "unknown Moodle user 99 (nobody)"]
    seed(store)
    r = runner.invoke(cli, ["--config", config, "intake", "replay", "--json"])
    assert json.loads(r.output)["records"] == 1 and json.loads(r.output)["parked"] == 1
    r = runner.invoke(cli, ["--config", config, "intake", "status", "--json"])
    status = json.loads(r.output)
    assert {k: status[k] for k in ("received", "duplicates", "rejected", "records", "parked")} == {
        "received": 2, "duplicates": 1, "rejected": 1, "records": 1, "parked": 1}
    store.dispose()


def test_import_jsonl_reports_bad_lines_and_stores_good(runner, config, db_url, tmp_path):
    f = tmp_path / "records.jsonl"
    good = {"teacher": ID_NUMBER, "programme": "sd-2022", "course": "C1", "activity": None, "kind": "course",
            "hours": 3, "minutes": None, "score": None, "passed": True, "occurred_at": "2022-09-01T10:00:00+08:00",
            "source": "offline:1"}
    bad = dict(good, teacher="110105194912310021", source="offline:2")
    f.write_text("\n".join([json.dumps(good), json.dumps(bad), "{not json", json.dumps(dict(good, kind="x"))]) + "\n")
    r = runner.invoke(cli, ["--config", config, "intake", "import", str(f), "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["stored"] == 1
    assert [(e["line"], e["field"]) for e in out["errors"]] == [(2, "teacher"), (3, "-"), (4, "kind")]
    assert "110105194912310021" not in r.output
    r = runner.invoke(cli, ["--config", config, "intake", "import", str(f), "--json"])
    assert json.loads(r.output)["duplicates"] == 1  # re-import changes nothing


def test_imported_revocation_and_late_completion_are_withdrawn_like_webhooks(runner, config, tmp_path):
    base = {"teacher": ID_NUMBER, "programme": "sd-2022", "course": "C1", "activity": "A1", "hours": None,
            "minutes": None, "score": None, "occurred_at": "2022-09-01T10:00:00+08:00"}
    done = dict(base, kind="activity", passed=True, source="offline:done")
    revoked = dict(base, kind="revocation", passed=None, occurred_at="2022-09-02T10:00:00+08:00",
                   source="offline:revoked")
    late = dict(done, occurred_at="2022-08-30T10:00:00+08:00", source="offline:late")  # imported after its revocation
    for n, lines in enumerate([[done, revoked], [late]]):
        f = tmp_path / f"records{n}.jsonl"
        f.write_text("".join(json.dumps(x) + "\n" for x in lines))
        r = runner.invoke(cli, ["--config", config, "intake", "import", str(f), "--json"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert (out["stored"], out["withdrawn"]) == (len(lines), 1)


@pytest.mark.parametrize("in_process_mb", [4, 0], ids=["in process", "child process"])
def test_import_xlsx_scores(runner, config, db_url, tmp_path, in_process_mb):
    # 0: the workbook is unpacked in the child process that reads large ones (readers/xlsx.py).
    with open(config, "a", encoding="utf-8") as f:
        f.write(f"[limits]\nxlsx_in_process_mb = {in_process_mb}\n")
    wb = Workbook()
    ws = wb.active
    ws.append(["身份证号", "课程编号", "活动编号", "成绩", "日期"])
    ws.append([ID_NUMBER, "WS-1", "教研-1", 92, datetime(2022, 10, 8, 9, 0)])
    ws.append([ID_NUMBER, "WS-1", "教研-2", 88, "not a date"])
    f = tmp_path / "scores.xlsx"
    wb.save(f)
    r = runner.invoke(cli, ["--config", config, "intake", "import", str(f), "--json"])
    out = json.loads(r.output)
    assert out["stored"] == 1 and [(e["line"], e["field"]) for e in out["errors"]] == [(3, "occurred_at")]
    assert sheet_processes(f) == []
    store = open_store(db_url)
    with store.session() as s:
        row = s.scalars(select(LearningRecordRow)).one()
        assert (row.kind, float(row.score), row.activity, row.origin) == ("score", 92.0, "教研-1", "import")
        assert s.scalars(select(Teacher)).first() is None
    store.dispose()


def test_payload_roundtrip_for_event_fixture():
    p = WebhookPayload.model_validate(payload("activity_completion_updated", state=0))
    assert p.completionstate == 0 and p.activity.modname == "page"
