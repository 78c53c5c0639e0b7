"""`creditbridge report`: pass rates, credits, registry state and deadline warnings as XLSX and HTML."""

from __future__ import annotations

from pathlib import Path

import click

from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app


@click.command("report")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the XLSX and HTML files. Default: sync.report_dir (creditbridge-data/reports).")
@click.option("--programme", default=None, help="Only this programme (default: all in the store).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: the figures and the file paths.")
@pass_app
def report_command(app: AppContext, out_dir: Path | None, programme: str | None, as_json: bool) -> None:
    """Write the credit report: pass rate by school, county and city, credits, rejected and pending records,
    deadline warnings."""
    from creditbridge.reports.build import report_data, write_files

    out = out_dir or Path(app.settings.sync.report_dir)
    if as_json or not interactive():
        data = report_data(app.settings, app.store, programme=programme)
        paths = write_files(data, out)
    else:
        from rich.console import Console

        with Console(stderr=True).status("reading results…") as status:
            data = report_data(app.settings, app.store, programme=programme)
            status.update("writing XLSX and HTML…")
            paths = write_files(data, out)
    if as_json:
        emit_json({**data, "report": {"xlsx": str(paths.xlsx), "html": str(paths.html)}})
        return
    t = data["totals"]
    rate = "-" if t["pass_rate"] is None else f"{t['pass_rate'] * 100:.1f}%"
    click.echo(f"teachers {t['teachers']}, evaluated {t['evaluated']}, passed {t['passed']} ({rate}), "
               f"credits {t['credits_total']:g}")
    reg = data["registry"]
    click.echo(f"registry: rejected {reg['rejected_total']}, pending {reg['pending_total']}")
    for w in data["deadlines"]:
        if w["warning"]:
            click.echo(f"WARNING {w['programme']}: deadline {w['deadline']} in {w['days_left']} day(s): "
                       f"{w['not_passed_total']} not passed, {w['not_acknowledged_total']} not acknowledged", err=True)
    click.echo(f"report: {paths.html}")
    click.echo(f"        {paths.xlsx}")


COMMANDS = [report_command]
