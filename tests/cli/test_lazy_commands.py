"""The CLI loads a flow's module only when one of its commands is looked up (issue #15: start-up CPU of
`sync roster --dry-run`), and its table of commands stays whole: every command every flow defines, each
listed by --help and runnable."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from creditbridge.cli.main import COMMAND_MODULES, cli

# Modules a roster sync never needs: the web servers, the scheduler, the PostgreSQL driver, the rich console.
NOT_FOR_SYNC = ("flask", "werkzeug", "apscheduler", "psycopg", "rich", "prometheus_client",
                "creditbridge.webhooks.commands", "creditbridge.quickstart.commands", "creditbridge.runner.commands")


def test_the_table_names_every_command_of_every_flow_module() -> None:
    for module_name in set(COMMAND_MODULES.values()):
        names = {c.name for c in importlib.import_module(module_name).COMMANDS}
        assert names == {n for n, m in COMMAND_MODULES.items() if m == module_name}, module_name


def test_help_lists_every_command_and_each_one_resolves(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:", 1)[1]
    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        assert f"\n  {name} " in listed, name
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert cli.get_command(ctx, "no-such-command") is None
    bad = runner.invoke(cli, ["no-such-command"])
    assert bad.exit_code == 2 and "No such command 'no-such-command'" in bad.output


def test_a_roster_dry_run_loads_no_other_flow(tmp_path: Path, sqlite_url: str) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("身份证号,姓名,学校代码,学校名称,区县,地市,学段,学科,是否乡村教师,任职状态\n", encoding="utf-8")
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(tmp_path / "reports").as_posix()}"\n', encoding="utf-8")
    # The real entry point in a fresh interpreter, then which modules it had loaded.
    code = ("import json, sys\n"
            "from creditbridge.cli.main import main\n"
            "sys.argv = ['creditbridge', '--config', sys.argv[1], 'sync', 'roster', sys.argv[2], '--dry-run', "
            "'--json']\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as e:\n"
            "    print(json.dumps({'exit': e.code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(config), str(roster)], capture_output=True, text=True,
                          env={"CREDITBRIDGE_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"}, timeout=120,
                          check=False)
    doc = json.loads(proc.stdout)
    assert doc["created"] == 0 and doc["report"].endswith(".xlsx")
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen["exit"] in (0, None)
    loaded = [m for m in seen["modules"] if m.split(".")[0] in NOT_FOR_SYNC or m in NOT_FOR_SYNC]
    assert loaded == []
    assert "creditbridge.sync.commands" in seen["modules"]
