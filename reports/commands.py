"""`creditbridge report`: pass rates, credits, registry state and deadline warnings as XLSX and HTML."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from creditbridge import i18n
from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app
from creditbridge.reports.build import report_data, write_files


@click.command("report")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the XLSX and HTML files. Default: sync.report_dir (creditbridge-data/reports).")
@click.option("--programme", default=None, help="Only this programme (default: all in the store).")
@click.option("--language", default=None, metavar="|".join(i18n.LANGUAGES),
              help="Language of the report for this run. Default: report.language (zh-CN).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: the figures and the file paths.")
@pass_app
def report_command(app: AppContext, out_dir: Path | None, programme: str | None, language: str | None,
                   as_json: bool) -> None:
    """Write the credit report: pass rate by school, county and city, credits, rejected and pending records,
    deadline warnings."""
    # Checked before the store is read: a wrong --language is `error: --language: ...`, exit 2, no file.
    try:
        w = i18n.words(app.settings.report.language if language is None else language)
    except i18n.LanguageError as e:
        raise i18n.LanguageError(f"--language: {e}") from None
    out = out_dir or Path(app.settings.sync.report_dir)
    if as_json or not interactive():
        data = report_data(app.settings, app.store, programme=programme)
        paths = write_files(data, out, language=w.language)
    else:
        with Console(stderr=True).status("reading results…") as status:
            data = report_data(app.settings, app.store, programme=programme)
            status.update("writing XLSX and HTML…")
            paths = write_files(data, out, language=w.language)
    if as_json:
        emit_json({**data, "report": {"xlsx": str(paths.xlsx), "html": str(paths.html)}})
        return
    t = data["totals"]
    click.echo(w("cli.totals", teachers=w.number(t["teachers"]), evaluated=w.number(t["evaluated"]),
                 passed=w.number(t["passed"]), rate=w.percent(t["pass_rate"]) or "-",
                 credits=w.number(t["credits_total"])))
    reg = data["registry"]
    click.echo(w("cli.registry", rejected=w.number(reg["rejected_total"]), pending=w.number(reg["pending_total"])))
    for d in data["deadlines"]:
        if d["warning"]:
            click.echo(w("cli.warning", programme=d["programme"], deadline=w.date(d["deadline"]), days=d["days_left"],
                         not_passed=w.number(d["not_passed_total"]),
                         not_acknowledged=w.number(d["not_acknowledged_total"])), err=True)
    click.echo(w("cli.report", path=paths.html))
    click.echo(f"        {paths.xlsx}")


COMMANDS = [report_command]
