"""The masking backstop (creditbridge.redact) and the suite's own check for full ID numbers in output."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from creditbridge.cli.main import cli
from creditbridge.records import mask_id_number
from creditbridge.records.id_number import check_digit
from creditbridge.redact import RedactingFilter, json_for_screen, mask_url, redact

ID = "11010519491231002X"
MASKED = mask_id_number(ID)
CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.mark.parametrize(("url", "shown"), [
    ("http://admin:s3cret@moodle.example/", "http://admin:***@moodle.example/"),
    ("https://u:p%40ss@h:8443/m", "https://u:***@h:8443/m"),
    ("http://:only-password@h", "http://:***@h"),
    ("http://user@h/", "http://user@h/"),  # no password: nothing to hide
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),  # a port is not a password
    ("not a url", "not a url"),
    ("http://u:pw@[::1", "http://u:***@[::1"),  # unparsable: the text pattern still hides it
])
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_redact_masks_id_numbers_and_url_passwords_in_free_text() -> None:
    text = (f'duplicate key DETAIL: Key (programme, id_number)=(sd-2022, {ID}) already exists; '
            f"cannot connect to http://admin:hunter2@moodle.example/webservice/rest/server.php; "
            f"lower-case x {ID.lower()}; 19 digits 1101051949123100211 stay")
    out = redact(text)
    assert ID not in out and ID.lower() not in out and "hunter2" not in out
    assert f"(sd-2022, {MASKED})" in out and "http://admin:***@moodle.example/" in out
    assert "1101051949123100211" in out  # not an ID number: longer than 18 digits


def _record(msg: str, args: tuple, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, exc_info)


def _through_filter(*records: logging.LogRecord) -> list[str]:
    """The lines a handler carrying the redacting filter writes for `records`."""
    out: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            out.append(self.format(r))

    handler = ListHandler()
    handler.addFilter(RedactingFilter())
    for record in records:
        handler.handle(record)
    return out


def test_filter_masks_message_args_and_exception_text() -> None:
    try:
        raise ValueError(f"[parameters: ('{ID}', 'sd-2022')]")
    except ValueError as e:
        record = _record("delivery for %s failed via %s", (ID, "http://u:pw@h/"), e)
    handler_out = _through_filter(record)
    assert len(handler_out) == 1
    line = handler_out[0]
    assert ID not in line and ":pw@" not in line
    assert f"delivery for {MASKED} failed via http://u:***@h/" in line
    assert "ValueError" in line and f"'{MASKED}'" in line  # the traceback is kept, masked


def test_filter_is_on_the_cli_handlers_after_a_command(runner, sqlite_url: str) -> None:
    """Every command installs it on the handlers logging has then (root's, and the last-resort one)."""
    result = runner.invoke(cli, ["intake", "status"], env={"CREDITBRIDGE_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0, result.output
    assert any(isinstance(f, RedactingFilter) for f in logging.lastResort.filters)
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in logging.getLogger().handlers)


def test_suite_check_fires_and_names_the_test(tmp_path: Path) -> None:
    """The conftest hooks, run on a suite of four small tests: a full number printed, one in a CLI runner's
    output and one in a creditbridge subprocess's output each fail the run, named with the number masked; a
    masked one in a log passes."""
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_leaks.py").write_text(textwrap.dedent(f'''
        import click
        import logging

        @click.command()
        def show():
            click.echo("teacher {ID}")

        def test_prints_one():
            print("row 3: {ID}")

        def test_logs_one_masked():
            logging.getLogger("x").warning("row 3: {MASKED}")

        def test_cli_output(runner):
            assert runner.invoke(show).exit_code == 0

        def test_subprocess_output():
            import subprocess, sys
            proc = subprocess.run([sys.executable, "-c", "import creditbridge; print('teacher {ID}')"],
                                  capture_output=True, text=True)
            assert proc.returncode == 0
    '''), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "4 passed" in out  # the tests themselves pass: the session fails
    assert "full ID numbers in test output" in out
    assert f"test_leaks.py::test_prints_one: Captured stdout call: {MASKED}" in out
    assert f"test_leaks.py::test_cli_output: CLI output of ``: {MASKED}" in out
    # the command line is shown too, masked
    assert "test_leaks.py::test_subprocess_output: output of `" in out
    assert f"-c import creditbridge; print('teacher {MASKED}')`: {MASKED}" in out
    assert "test_logs_one_masked" not in out
    assert ID not in out


def test_json_for_screen_escapes_what_drives_a_terminal_and_stays_the_same_json() -> None:
    first17 = "37010219850101001"
    number = first17 + check_digit(first17)
    value = {"name": "张三\x1b[2J\x9b31m\u202eevil\u2066", "teacher": number, "list": [1, "\u200f"]}
    for indent in (None, 2):
        text = json_for_screen(value, indent=indent)
        assert not any(c in text for c in "\x1b\x9b\u202e\u2066\u200f"), text
        assert "张三" in text  # Chinese stays readable
        assert number not in text
        back = json.loads(text)
        assert back["name"] == value["name"] and back["list"] == value["list"]
        assert back["teacher"] == mask_id_number(number)


def test_filter_keeps_a_text_log_line_one_line_whatever_its_arguments_hold() -> None:
    """A username or course idnumber from outside with a newline or an escape sequence cannot forge a second log
    line or drive the terminal tailing the log (CWE-117); the message's own newlines stay."""
    evil = "alice\n2026-12-06 10:00:00 INFO creditbridge: push acknowledged\x1b[2J"
    out = _through_filter(
        _record("parked delivery for %s (%d tries): %r", (evil, 3, ValueError("bad\r\nthing"))),
        _record("%(user)s logged in", ({"user": evil},)),
        _record("two problems:\n  - one\n  - two\x07", ()),
        _record("%s at %.1f%% of %r", ("clean", 12.25, "x")))
    assert out[0].startswith("parked delivery for alice\\n2026-12-06 10:00:00 INFO creditbridge: push acknowledged"
                             "\\x1b[2J (3 tries): ")
    assert "\n" not in out[0] and "\r" not in out[0] and "\x1b" not in out[0] and "bad" in out[0]
    assert out[1].startswith("alice\\n2026-12-06") and "\n" not in out[1] and "\x1b" not in out[1]
    assert out[2] == "two problems:\n  - one\n  - two\\x07"  # creditbridge's own lines kept, BEL escaped
    assert out[3] == "clean at 12.2% of 'x'"  # clean arguments are formatted exactly as logging would


def test_filter_reads_a_mapping_argument_through_its_own_lookup() -> None:
    """gunicorn's access log passes one mapping whose lookup answers "-" for a header the request lacked."""
    class Atoms(dict):
        def __getitem__(self, key: str) -> object:
            return super().get(key, "-")

    out = _through_filter(_record('%(h)s "%(r)s" %(a)s', (Atoms(h="127.0.0.1", r="POST /x\nforged"),)))
    assert out == ['127.0.0.1 "POST /x\\nforged" -']
