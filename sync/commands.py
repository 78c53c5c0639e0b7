"""`creditbridge sync catalog|topics|roster FILE` and `creditbridge sync runs`.

`--json` prints exactly one object (counts, run_id, errors, report). The exit code is 0 when the file
was read, bad rows or not (they are in `errors`); 2 when the file cannot be read (CLI error); 1 when
the run was stopped (Moodle failed as a whole, or a topics file was refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app
from creditbridge.sync.outcome import Progress, SyncOutcome


@contextmanager
def _progress(show: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr for a person at a terminal; nothing otherwise."""
    if not show:
        yield None
        return
    # rich (about 35 ms) only for a person at a terminal: a --json run, a pipe or a scheduler job never loads it
    # (tests/cli/test_lazy_commands.py).
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, object] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)  # type: ignore[arg-type]

        yield update


def _finish(outcome: SyncOutcome, as_json: bool) -> None:
    if as_json:
        emit_json(outcome.as_json())
    else:
        verb = "would be" if outcome.dry_run else ""
        counts = outcome.counts()
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v or k in ("created", "unchanged"))
        click.echo(f"sync {outcome.kind} run {outcome.run_id}{' (dry run)' if outcome.dry_run else ''}: {shown}"
                   + (f" ({verb} planned, nothing sent)" if outcome.dry_run else ""))
        for e in outcome.errors[:20]:
            where = f"row {e.row}" if e.row is not None else "run"
            click.echo(f"  {where}{', ' + e.column if e.column else ''}: {e.reason}", err=True)
        more = len(outcome.errors) - 20 + outcome.errors_omitted
        if more > 0:
            click.echo(f"  … and {more} more errors (see the report)", err=True)
        for n in outcome.notes:
            click.echo(f"note: {n}", err=True)
        if outcome.report:
            click.echo(f"report: {outcome.report}")
    if outcome.aborted:
        if not as_json:
            click.echo(f"error: run stopped: {outcome.aborted}", err=True)
        raise click.exceptions.Exit(1)


def _run(app: AppContext, as_json: bool, call: Callable[[Progress | None], SyncOutcome]) -> None:
    with _progress(not as_json and interactive()) as progress:
        outcome = call(progress)
    _finish(outcome, as_json)


# _SERVICE_LAZY: each command imports sync.service (and through it openpyxl, requests, babel, the store's models:
# about 240 ms, half the CLI's start-up) when it runs, not this module: the CLI imports this module for any sync
# command, also for `sync roster --help` or `sync runs`, which need none of it.
_file = click.argument("file", type=click.Path(path_type=Path))
_dry = click.option("--dry-run", is_flag=True, help="Plan and report; change nothing in Moodle or the store.")
_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object (counts, run_id, errors, report).")
_wait = click.option("--wait", is_flag=True, help="If another sync run holds this store, wait for it to finish "
                     "instead of stopping at once (exit 2).")


@click.group("sync")
def sync_group() -> None:
    """Sync the provincial catalog, schools' topics and roster into Moodle."""


@sync_group.command("catalog")
@_file
@_dry
@_json
@_wait
@pass_app
def catalog_command(app: AppContext, file: Path, dry_run: bool, as_json: bool, wait: bool) -> None:
    """Courses (and their categories) from a catalog file (YAML, XLSX or CSV)."""
    from creditbridge.sync.service import sync_catalog  # noqa: PLC0415 - start-up time, see _SERVICE_LAZY

    _run(app, as_json, lambda p: sync_catalog(app.settings, app.store, file, dry_run=dry_run, progress=p,
                                              wait=wait))


@sync_group.command("topics")
@_file
@_dry
@_json
@_wait
@pass_app
def topics_command(app: AppContext, file: Path, dry_run: bool, as_json: bool, wait: bool) -> None:
    """Schools' elective topic choices (school, topic); refused whole if a school breaks the rules."""
    from creditbridge.sync.service import sync_topics  # noqa: PLC0415 - start-up time, see _SERVICE_LAZY

    _run(app, as_json, lambda p: sync_topics(app.settings, app.store, file, dry_run=dry_run, progress=p,
                                             wait=wait))


@sync_group.command("roster")
@_file
@_dry
@_json
@click.option("--delta", is_flag=True, help="The file lists changes only: teachers absent from it are left alone.")
@click.option("--force", is_flag=True, help="Apply suspensions held back because there were too many.")
@_wait
@pass_app
def roster_command(app: AppContext, file: Path, dry_run: bool, as_json: bool, delta: bool, force: bool,
                   wait: bool) -> None:
    """Teachers from a roster export (XLSX or CSV; a full export unless --delta)."""
    from creditbridge.readers.xlsx import read_ahead  # noqa: PLC0415 - start-up time, see _SERVICE_LAZY

    # A large XLSX roster starts unpacking now, while the flow is imported and the store and run lock taken.
    with read_ahead(file, app.settings.limits):
        from creditbridge.sync.service import sync_roster  # noqa: PLC0415 - start-up time, see _SERVICE_LAZY

        _run(app, as_json, lambda p: sync_roster(app.settings, app.store, file, dry_run=dry_run, delta=delta,
                                                 force=force, progress=p, wait=wait))


@sync_group.command("runs")
@click.option("--limit", default=50, show_default=True, help="How many of the latest runs.")
@_json
@pass_app
def runs_command(app: AppContext, limit: int, as_json: bool) -> None:
    """The latest sync runs: id, kind, file, outcome, counts, report."""
    from creditbridge.sync.service import list_runs  # noqa: PLC0415 - start-up time, see _SERVICE_LAZY

    runs = list_runs(app.store, limit=limit)
    if as_json:
        emit_json(runs)
        return
    if not runs:
        click.echo("no sync runs yet")
        return
    for r in runs:
        counts = r["counts"] or {}
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        click.echo(f"{r['run_id']:>5}  {r['started_at']}  {r['kind']:<7} {r['outcome']:<8}"
                   f"{' dry-run' if r['dry_run'] else ''}  {r['file']}  {shown or 'no changes'}"
                   f"  errors {r['errors']}")


COMMANDS = [sync_group]
