"""The role docs/moodle.md describes is enough: a site set up as the docs say (token of a user holding only
that role, welcome messages off) syncs the samples with no error, sends no welcome message, and a catalog
change that needs moodle/course:changefullname goes through."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from click.testing import CliRunner
from site_admin import docs_site, ws
from sync_helpers import SAMPLES, make_env


def test_samples_sync_with_the_docs_role(tmp_path: Path, sqlite_url: str, runner: CliRunner,
                                         sandbox_server: Any) -> None:
    token = docs_site(sandbox_server)
    as_role = SimpleNamespace(url=sandbox_server.url, token=token)
    env = make_env(tmp_path, as_role, sqlite_url)
    catalog = env.sync(runner, "catalog", SAMPLES / "catalog.csv")
    topics = env.sync(runner, "topics", SAMPLES / "topics.csv")
    roster = env.sync(runner, "roster", SAMPLES / "roster.csv")
    assert catalog["created"] == 57 and catalog["errors"] == []
    assert topics["errors"] == [] and roster["created"] == 11 and roster["errors"] == []
    messages = requests.get(f"{sandbox_server.url}/sandbox/admin/welcome_messages",
                            params={"wstoken": sandbox_server.token}, timeout=10).json()["messages"]
    assert messages == []
    # A renamed course: an update the docs' role may make now that it holds moodle/course:changefullname.
    text = (SAMPLES / "catalog.csv").read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1]
    changed = tmp_path / "catalog.csv"
    changed.write_text("\n".join([header, first.replace(first.split(",")[1], first.split(",")[1] + " (2026)", 1),
                                  *text[2:]]) + "\n", encoding="utf-8")
    again = env.sync(runner, "catalog", changed)
    assert again["updated"] == 1 and again["errors"] == []
    course = ws(sandbox_server, sandbox_server.token, "core_course_get_courses_by_field", field="idnumber",
                value=first.split(",")[0])["courses"][0]
    assert course["fullname"] == first.split(",")[1] + " (2026)"
