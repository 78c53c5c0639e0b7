"""Issue #14 item 12: resource bombs in the files sync reads. Each hostile file is built small on disk, fed
to the real CLI in a subprocess whose address space is capped (RLIMIT_AS), and must be refused with a clear
`error:` naming the file and where in it (exit 2) or, for a merely careless export, be done in bounded time,
memory and output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bombs import billion_laughs, xlsx_with_huge_shared_string
from cli_process import run_cli
from click.testing import CliRunner
from openpyxl import load_workbook
from sync_helpers import HEADERS, Person, id_number

from creditbridge.cli.main import cli
from creditbridge.i18n import words

ZH = words("zh-CN")  # the sync report is in report.language, zh-CN by default

MEMORY_MB = 1024  # the child's whole address space: a bomb that gets through dies of MemoryError, visibly


def _config(tmp_path: Path, extra: str = "") -> tuple[Path, dict[str, str]]:
    config = tmp_path / "creditbridge.toml"
    config.write_text(f'[sync]\nreport_dir = "{(tmp_path / "reports").as_posix()}"\nusername_key = "k"\n{extra}',
                      encoding="utf-8")
    return config, {"CREDITBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}


def test_the_peak_measured_is_the_cli_s_own_not_pytest_s(tmp_path: Path) -> None:
    """Linux keeps a process's peak RSS across fork and exec: a CLI spawned from a large pytest process measured
    pytest's RSS as its own (CI caught it: 302-346 MB "peaks" late in a full run). run_cli's launcher forks it
    from a small process. Also: the cap still holds, and the exit code comes back."""
    ballast = bytearray(400 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # resident, not just reserved
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "runs", env=env, memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 0, ran.output
    assert 20 < ran.max_rss_mb < 250, ran.max_rss_mb
    capped = run_cli(config, "sync", "runs", env=env, memory_mb=30, timeout=30)
    assert capped.code != 0 and ("MemoryError" in capped.output or "memory" in capped.output.lower())
    del ballast


def test_catalog_yaml_with_nested_aliases_is_refused_at_once(tmp_path: Path) -> None:
    bomb = tmp_path / "catalog.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    assert bomb.stat().st_size < 1000
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "catalog", str(bomb), "--dry-run", env=env, memory_mb=MEMORY_MB, timeout=20)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith("error: catalog.yaml: YAML anchor &l0 at line 1: anchors and aliases are not "
                                 "accepted in data files"), ran.stderr
    assert "Traceback" not in ran.output and ran.seconds < 15 and ran.max_rss_mb < 300


def test_rule_file_with_aliases_is_refused_naming_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "mine.yaml"
    rules.write_text("id: mine\n" + billion_laughs(), encoding="utf-8")
    ran = run_cli(None, "rules", "check", str(rules), cwd=tmp_path, memory_mb=MEMORY_MB, timeout=20)
    assert ran.code == 2, ran.output
    assert "YAML anchor &l0 at line 2: anchors and aliases are not accepted" in ran.stderr
    assert "Traceback" not in ran.output and ran.max_rss_mb < 300


def test_xlsx_roster_with_a_300_mb_shared_string_is_refused_before_opening(tmp_path: Path) -> None:
    bomb = xlsx_with_huge_shared_string(tmp_path / "roster.xlsx", HEADERS, Person(id_number(1), "张三").cells(),
                                        300 << 20)
    assert bomb.stat().st_size < 2 << 20
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(bomb), "--dry-run", env=env, memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 2, ran.output
    assert ran.stderr.startswith("error: roster.xlsx: its shared strings (xl/sharedStrings.xml) unpack to 300 MB, "
                                 "more than limits.xlsx_shared_strings_mb = 256 MB"), ran.stderr
    assert "Traceback" not in ran.output and ran.max_rss_mb < 300


def test_xlsx_roster_with_one_overlong_cell_is_refused_naming_the_string(tmp_path: Path) -> None:
    # Under the size bound, over the cell bound: found by the streaming check of the shared strings.
    bomb = xlsx_with_huge_shared_string(tmp_path / "roster.xlsx", HEADERS, Person(id_number(1), "张三").cells(),
                                        5 << 20)
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(bomb), "--dry-run", env=env, memory_mb=MEMORY_MB, timeout=30)
    assert ran.code == 2, ran.output
    assert "error: roster.xlsx: shared string" in ran.stderr
    assert "has 5,242,880 characters, more than limits.max_cell_chars = 10,000" in ran.stderr
    assert "Traceback" not in ran.output and ran.max_rss_mb < 400


def test_csv_roster_with_a_huge_cell_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        w.writerow(Person(id_number(1), "张三").cells())
        w.writerow(Person(id_number(2), "李" * 300_000).cells())
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(path), "--dry-run", env=env, memory_mb=MEMORY_MB, timeout=20)
    assert ran.code == 2, ran.output
    assert ran.stderr == ("error: roster.csv: row 3: a cell longer than 131,072 characters (the CSV cell limit); "
                          "is this the right file?\n"), ran.stderr
    assert "Traceback" not in ran.output


def test_careless_export_with_few_distinct_id_numbers_is_linear_and_bounded(tmp_path: Path) -> None:
    # The 1,000,000 rows with 21,000 distinct ID numbers (48 rows each), scaled down: 36,000 rows,
    # 750 numbers. (bench/roster_duplicates.py runs the full size.)
    distinct = [id_number(i, born=f"19{70 + i // 1000:02d}0101") for i in range(750)]
    path = tmp_path / "roster.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        for r in range(36_000):
            w.writerow(Person(distinct[r % 750], f"教师{r}").cells())
    config, env = _config(tmp_path)
    ran = run_cli(config, "sync", "roster", str(path), "--dry-run", "--json", env=env, memory_mb=MEMORY_MB,
                  timeout=40)
    assert ran.code == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert len(doc["errors"]) == 1000 and doc["errors_omitted"] == 35_000
    assert [e["row"] for e in doc["errors"]] == list(range(2, 1002))
    first = doc["errors"][0]["reason"]
    assert first.startswith("ID number 3701") and "is on 48 rows (2, 752, 1502, 2252, 3002, …)" in first
    assert distinct[0] not in ran.output
    assert len(ran.stdout) < 400_000  # was a reason naming every row, on every row
    assert ran.seconds < 15 and ran.max_rss_mb < 300, (ran.seconds, ran.max_rss_mb)

    sheet = list(load_workbook(doc["report"], read_only=True)[ZH("sync.sheet.errors")].iter_rows(values_only=True))
    assert len(sheet) == 1 + 1000 + 1 and sheet[-1][2] == ZH("sync.more_errors", n=35000)
    # The text output and `sync runs`, in this process (a child per command costs seconds on a loaded machine).
    text = CliRunner().invoke(cli, ["--config", str(config), "sync", "roster", str(path), "--dry-run"], env=env)
    assert text.exit_code == 0 and "… and 35980 more errors (see the report)" in text.stderr
    assert len(text.output) < 20_000
    runs = CliRunner().invoke(cli, ["--config", str(config), "sync", "runs", "--json"], env=env)
    assert [r["errors"] for r in json.loads(runs.stdout)] == [36_000, 36_000]


def test_xlsx_inline_cell_and_yaml_value_beyond_the_cell_bound_name_row_and_column(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()  # openpyxl writes strings inline: this cell is in the worksheet, not the shared strings
    ws = wb.active
    ws.append(HEADERS)
    ws.append(Person(id_number(1), "张三").cells())
    ws.append(Person(id_number(2), "王" * 20_000).cells())
    wb.save(tmp_path / "roster.xlsx")
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("courses:\n  - {code: C1, title: Ethics, kind: required, hours: 10}\n"
                       f"  - {{code: C2, title: {'x' * 20_000}, kind: required, hours: 10}}\n", encoding="utf-8")
    config, env = _config(tmp_path)
    runner = CliRunner()
    xlsx = runner.invoke(cli, ["--config", str(config), "sync", "roster", str(tmp_path / "roster.xlsx"), "--dry-run"],
                         env=env)
    assert xlsx.exit_code == 2, xlsx.output
    assert xlsx.stderr == ("error: roster.xlsx: row 3, column 姓名: a cell of 20,000 characters, more than "
                           "limits.max_cell_chars = 10,000\n")
    yml = runner.invoke(cli, ["--config", str(config), "sync", "catalog", str(catalog), "--dry-run"], env=env)
    assert yml.exit_code == 2, yml.output
    assert yml.stderr == ("error: catalog.yaml: line 3, title: a value of 20,000 characters, more than "
                          "limits.max_cell_chars = 10,000\n")


def test_a_bad_limits_setting_is_refused_naming_it(tmp_path: Path) -> None:
    config, env = _config(tmp_path, "[limits]\nmax_errors = 0\n")
    ran = CliRunner().invoke(cli, ["--config", str(config), "sync", "runs"], env=env)
    assert ran.exit_code == 2 and "limits.max_errors" in ran.stderr, ran.output
