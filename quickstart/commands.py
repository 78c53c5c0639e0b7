"""`creditbridge quickstart`: the README's first command."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from creditbridge.cli.context import emit_json, interactive
from creditbridge.quickstart.run import DEFAULT_DIR, DEFAULT_TEACHERS, run_quickstart
from creditbridge.quickstart.summary import RichProgress, render


@click.command("quickstart")
@click.option("--teachers", default=DEFAULT_TEACHERS, show_default=True, type=click.IntRange(1, 5000),
              help="Teachers in the generated province.")
@click.option("--dir", "directory", default=str(DEFAULT_DIR), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the province, state store, report and config go. A rerun replaces its own files.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generated province and learners.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout, no progress.")
def quickstart_command(teachers: int, directory: Path, seed: int, as_json: bool) -> None:
    """Run the whole main job on the embedded defaults, in under a minute.

    Starts the sandbox LMS, the webhook receiver and the registry simulator on 127.0.0.1, generates a
    province, syncs it into the LMS, lets teachers complete courses (completions travel as signed
    webhooks), reconciles, evaluates credits, pushes them to the registry and writes the report.
    Nothing outside --dir is written; your own creditbridge.toml and environment are not used.
    """
    try:
        _run(directory, teachers, seed, as_json)
    except KeyboardInterrupt:
        # The run's ExitStack has already stopped every server by the time this is reached.
        click.echo("interrupted: servers stopped; run it again to start from scratch", err=True)
        sys.exit(130)


def _run(directory: Path, teachers: int, seed: int, as_json: bool) -> None:
    if as_json or not interactive():
        summary = run_quickstart(directory, teachers=teachers, seed=seed)
        if as_json:
            emit_json(summary)
            return
        render(summary, color=False)
        return

    console = Console(stderr=True)
    with RichProgress(console) as progress:
        summary = run_quickstart(directory, teachers=teachers, seed=seed, progress=progress)
    # The progress lines already told what each step did: no table repeating them.
    render(summary, color=sys.stdout.isatty(), steps_table=False)


COMMANDS = [quickstart_command]
