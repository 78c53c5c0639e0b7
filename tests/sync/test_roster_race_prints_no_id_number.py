"""#14 item 2: two concurrent `sync roster` runs, the second failing on the teacher table's unique key, print
no ID number, nor write one into the run's report.

The race made deterministic on the real PostgreSQL: a rival transaction (the other sync) has inserted the
teacher rows and not committed; `sync roster` creates the accounts in Moodle, then its INSERT of the same
teachers waits on the unique index, the rival commits, and the run fails with a unique violation whose DETAIL
line is "Key (programme, id_number)=(sd-2022, 3701...) already exists"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pg_waits import run_past_a_rival
from sqlalchemy import insert
from sync_helpers import make_env, people, write_roster

from creditbridge.records import mask_id_number
from creditbridge.store import open_store
from creditbridge.store.models.core import Teacher

pytestmark = pytest.mark.postgres



def test_concurrent_roster_sync_failure_prints_no_id_number(tmp_path: Path, sandbox_server: Any, pg_url: str) -> None:
    env = make_env(tmp_path, sandbox_server, pg_url)
    staff = people(2)
    roster = write_roster(tmp_path / "r.csv", staff)
    store = open_store(pg_url)
    rival = store.engine.connect()
    trans = rival.begin()
    rival.execute(insert(Teacher.__table__), [
        {"programme": "sd-2022", "id_number": p.id_number, "name": p.name, "school_code": p.school,
         "school_name": p.school_name, "county": p.county, "city": p.city, "stage": "middle", "status": "active"}
        for p in staff])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDITBRIDGE_")}
    environ.update(env.env)
    try:
        code, out, err = run_past_a_rival(pg_url, ["--config", str(env.config), "sync", "roster", str(roster)],
                                          environ, trans, "sync")
    finally:
        rival.close()
        store.dispose()
    assert code != 0, (out, err)
    assert f"Key (programme, id_number)=(sd-2022, {mask_id_number(staff[0].id_number)}) already exists" in err
    reports = list(env.report_dir.glob("*.xlsx"))
    assert len(reports) == 1
    wb = load_workbook(reports[0], read_only=True)
    cells = " ".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v)
    wb.close()
    assert "already exists" in cells  # the report says why the run stopped ...
    for p in staff:  # ... and neither it nor the output holds a full number
        assert p.id_number not in out + err + cells
