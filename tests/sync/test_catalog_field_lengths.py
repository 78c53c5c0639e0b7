"""Hostile review: roster, catalog and topic values longer than the store's columns (a 10,000-character school
name, a topic over 60 characters ...). On PostgreSQL the store refused them mid-run with a database error (a
traceback, the run's rows lost); on SQLite they were stored as they came. They are row errors now, like any bad
value: the row and column named, the row left out, the others synced."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sync_helpers import SAMPLES, Env, make_env, people, write_csv

from creditbridge.store import open_store
from creditbridge.store.models.core import CatalogCourse, SchoolTopic, Teacher


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, db_url: str) -> Env:
    return make_env(tmp_path, sandbox, db_url)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _count(env: Env, table: Any) -> int:
    store = open_store(env.settings.database.url)
    try:
        with store.session() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        store.dispose()


@pytest.mark.parametrize(("field", "length"), [("topic", 61), ("code", 101), ("title", 256), ("city", 101)])
def test_a_catalog_value_longer_than_the_store_holds_is_a_row_error(
        env: Env, runner: CliRunner, tmp_path: Path, field: str, length: int) -> None:
    rows = _rows(SAMPLES / "catalog.csv")
    n = next(i for i, r in enumerate(rows) if r["kind"] == "elective")
    rows[n][field] = "课" * length
    out = env.sync(runner, "catalog", _write(tmp_path / "catalog.csv", rows))
    [error] = out["errors"]
    assert error["row"] == n + 2 and error["column"] == field and f"{length} characters" in error["reason"]
    assert _count(env, CatalogCourse) == len(rows) - 1


def test_a_topic_choice_longer_than_the_store_holds_is_a_row_error(env: Env, runner: CliRunner,
                                                                   tmp_path: Path) -> None:
    assert env.sync(runner, "catalog", SAMPLES / "catalog.csv")["errors"] == []
    rows = _rows(SAMPLES / "topics.csv")
    rows[0]["topic"] = "t" * 61
    result = env.run(runner, "sync", "topics", str(_write(tmp_path / "topics.csv", rows)), "--json")
    assert result.exit_code != 0  # a topics file is taken whole or not at all
    [error] = [e for e in json.loads(result.stdout)["errors"] if e["row"] == 2]
    assert error["column"] == "topic" and "61 characters" in error["reason"]
    assert _count(env, SchoolTopic) == 0


ROSTER_HEADER = ["id_number", "name", "school_code", "school_name", "county", "city", "stage", "subject", "rural",
                 "status", "phone", "email", "teacher_code"]


@pytest.mark.parametrize(("field", "length"), [("name", 101), ("school_name", 10_000), ("school_code", 41),
                                               ("county", 101), ("city", 101), ("email", 201),
                                               ("teacher_code", 61)])
def test_a_roster_value_longer_than_the_store_holds_is_a_row_error(
        env: Env, runner: CliRunner, tmp_path: Path, field: str, length: int) -> None:
    rows = [[p.id_number, p.name, p.school, p.school_name, p.county, p.city, p.stage, p.subject, p.rural,
             p.status, "", "", ""] for p in people(5)]
    value = "x" * (length - len("@example.org")) + "@example.org" if field == "email" else "校" * length
    rows[3][ROSTER_HEADER.index(field)] = value
    path = write_csv(tmp_path / "roster.csv", ROSTER_HEADER, rows)
    out = env.sync(runner, "roster", path)
    assert [(e["row"], e["column"]) for e in out["errors"]] == [(5, field)]
    assert f"{length} characters" in out["errors"][0]["reason"]
    assert _count(env, Teacher) == 4
