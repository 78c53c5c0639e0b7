"""`creditbridge rules check` and `creditbridge credits evaluate | explain`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from creditbridge import CreditbridgeError, i18n
from creditbridge.cli.context import AppContext, emit_json, interactive, pass_app
from creditbridge.input_limits import not_regular
from creditbridge.mappings.cycle import current_year, cycle_id, cycle_problems, find_cycle, iter_cycle_statuses
from creditbridge.mappings.evaluate import evaluate_all
from creditbridge.mappings.explain import cycle_table, fmt, print_result
from creditbridge.mappings.inputs import read_inputs
from creditbridge.mappings.read import iter_results, stored_result
from creditbridge.mappings.service import ProgrammeEvaluation, evaluate_store
from creditbridge.programmes import RuleFileError, line_of, load_programme, load_programme_if_any, parse_programme
from creditbridge.records.id_number import mask_id_number
from creditbridge.redact import json_for_screen, printable
from creditbridge.store.models.core import Teacher


@click.group("rules")
def rules_group() -> None:
    """Programme rule files (programmes/rules/<programme>.yaml)."""


@rules_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def check_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Validate a rule file; list every problem with its path in the file. Exit 2 when invalid."""
    try:
        what = not_regular(file.stat().st_mode)
        if what is not None:  # a FIFO would block the read until some writer comes
            raise CreditbridgeError(f"{file}: is {what}, not a regular file")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CreditbridgeError(f"{file}: cannot read the rule file ({e})") from e
    try:
        prog = parse_programme(text, str(file))
    except RuleFileError as e:
        if as_json:
            emit_json({"file": str(file), "valid": False, "problems": [p.as_json() for p in e.problems]})
        else:
            click.echo(f"{file}: {len(e.problems)} problem(s)", err=True)
            for p in e.problems:
                click.echo(f"  {p}", err=True)
        ctx.exit(2)
    problems = cycle_problems(prog, line_of(yaml.compose(text), ("year",)))
    if problems:
        if as_json:
            emit_json({"file": str(file), "valid": False, "problems": [p.as_json() for p in problems]})
        else:
            click.echo(f"{file}: {len(problems)} problem(s)", err=True)
            for p in problems:
                click.echo(f"  {p}", err=True)
        ctx.exit(2)
    summary: dict[str, Any] = {"file": str(file), "valid": True, "id": prog.id, "name": prog.name, "year": prog.year,
               "version": prog.version, "deadline": prog.deadline.isoformat(), "hash": prog.hash,
               "roles": {name: [c.name for c in role.components] for name, role in prog.roles.items()}}
    if prog.cycle is not None:
        summary["cycle"] = {"id": cycle_id(prog), "derived": prog.cycle.id is None,
                            "start_year": prog.cycle.start_year,
                            "last_year": prog.cycle.start_year + prog.cycle.years - 1}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{file}: valid ({prog.id} {prog.year}, version {prog.version}, hash {prog.hash[:12]})")
    for name, comps in summary["roles"].items():
        click.echo(f"  {name}: {', '.join(comps)}")
    if "cycle" in summary:
        c = summary["cycle"]
        click.echo(f"  cycle {c['id']}{' (derived id)' if c['derived'] else ''}: {c['start_year']}–{c['last_year']}")


@click.group("credits")
def credits_group() -> None:
    """Evaluate credits from learning records and explain them."""


@credits_group.command("evaluate")
@click.option("--programme", default=None, help="Programme id (default: every programme in the store).")
@click.option("--roster", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: roster file (no store, no LMS).")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: catalog file.")
@click.option("--topics", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: school topic choices.")
@click.option("--records", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: learning records (JSON lines).")
@click.option("--assignments", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: lesson-case assignments (CSV teacher,course).")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Standalone: a rule file to use instead of the programme's shipped one.")
@click.option("--all", "all_", is_flag=True,
              help="Store mode: evaluate every teacher of the programme, not only those whose inputs changed.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Store mode: evaluation processes, each taking a range of the roster (a full run).")
@click.option("--summary", is_flag=True,
              help="Store mode: print the run's counts (evaluated, changed, passed, ...) instead of the per-person "
                   "list; with --json as one JSON object.")
# --list was needed before --json printed the list; accepted so that existing scripts keep working
@click.option("--list", "as_list", is_flag=True, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: the list of results, per person.")
@click.option("--wait", is_flag=True, help="Store mode: if another evaluation holds this store, wait for it to "
              "finish instead of stopping at once (exit 2).")
@pass_app
def evaluate_command(app: AppContext, programme: str | None, roster: Path | None, catalog: Path | None,
                     topics: Path | None, records: Path | None, assignments: Path | None, rules_file: Path | None,
                     all_: bool, workers: int, summary: bool, as_list: bool, as_json: bool, wait: bool) -> None:
    """Evaluate credits: on the state store, or standalone from files (--roster --catalog --records).

    On the store only the teachers whose inputs changed since are evaluated (and their schools' admin results),
    unless --all, a changed rule file or catalog, or no complete run yet makes it a run over everyone.
    With --json both forms print the list of results, per person; on the store, --summary prints the counts
    (with each programme's mode and why)."""
    standalone = any(x is not None for x in (roster, catalog, topics, records, assignments, rules_file))
    if standalone:
        if summary or all_:
            raise click.UsageError("--summary and --all are for the store mode; the standalone form evaluates "
                                   "everything in the files and prints the list")
        _standalone(programme, roster, catalog, topics, records, assignments, rules_file, as_json)
        return

    if as_json or not interactive():
        counts = evaluate_store(app.settings, app.store, programme=programme, workers=workers, wait=wait,
                                incremental=not all_)
    else:
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("evaluating", total=None)
            counts = evaluate_store(app.settings, app.store, programme=programme, workers=workers, wait=wait,
                                    progress=lambda n: bar.advance(task, n), incremental=not all_)
    if as_json and summary:
        emit_json(counts.as_json())
        return
    if as_json:
        # streamed: a million results are written as they are read, never held as one list
        write_json_list(iter_results(app.store, list(counts.programmes)))
        if interactive():
            click.echo(f"{counts.evaluated} result(s) evaluated, {counts.changed} changed, "
                       f"passed {counts.passed}, failed {counts.failed}", err=True)
            for code, pc in counts.programmes.items():
                click.echo(f"{code}: {_mode_line(pc)}", err=True)
        return
    if counts.marks_disposed:
        click.echo("marks deleted unread (programmes never evaluated whole; their first run evaluates everyone): "
                   + ", ".join(f"{printable(code)} {n}" for code, n in counts.marks_disposed.items()))
    if not counts.programmes:
        click.echo("nothing to evaluate: no teachers in the store (run a roster sync first)")
        return
    for code, pc in counts.programmes.items():
        click.echo(f"{code}: {pc.evaluated} result(s) evaluated, {pc.changed} result(s) changed "
                   f"(rules version {pc.rule_version}, hash {pc.rule_hash[:12]}; {_mode_line(pc)})")
    click.echo(f"passed {counts.passed}, failed {counts.failed}; new {counts.new}, withdrawn {counts.withdrawn}")


def _mode_line(pc: ProgrammeEvaluation) -> str:
    return f"{'marked teachers only' if pc.mode == 'incremental' else 'everyone'}: {pc.reason}"


def write_json_list(items: Iterable[dict[str, Any]], batch: int = 1000) -> int:
    """One JSON array on stdout, written item by item (one item a line) in batches of `batch` items.
    Returns the number of items."""
    n = 0
    buf: list[str] = []
    click.echo("[", nl=False)
    for item in items:
        # ID numbers masked and control characters escaped, as in emit_json and the text tables
        buf.append(("\n" if n == 0 else ",\n") + json_for_screen(item))
        n += 1
        if len(buf) >= batch:
            click.echo("".join(buf), nl=False)
            buf.clear()
    click.echo("".join(buf) + ("\n]" if n else "]"))
    return n


def _standalone(programme: str | None, roster: Path | None, catalog: Path | None, topics: Path | None,
                records: Path | None, assignments: Path | None, rules_file: Path | None, as_json: bool) -> None:
    missing = [n for n, v in (("--roster", roster), ("--catalog", catalog), ("--records", records)) if v is None]
    if rules_file is None and not programme:
        missing.insert(0, "--programme")
    if missing:
        raise click.UsageError(f"standalone evaluation needs {', '.join(missing)}")
    assert roster is not None and catalog is not None and records is not None
    prog = load_programme(rules_file if rules_file is not None else str(programme))
    if programme and prog.id != programme:
        raise CreditbridgeError(f"rule file is for programme {prog.id}, not {programme}")
    inputs = read_inputs(prog.id, roster, catalog, topics, records, assignments)
    results = evaluate_all(prog, catalog=inputs.catalog, people=inputs.people, records=inputs.records,
                           school_topics=inputs.topics, assignments=inputs.assignments)
    out = [{k: v for k, v in r.as_json().items() if k not in ("year", "grade")} | {"reasons_zh": r.reasons_zh}
           for r in results]
    if as_json:
        emit_json(out)
        return

    table = Table(title=f"{prog.id} v{prog.version}: {len(out)} result(s)")
    for col in ("teacher", "role", "hours", "credits", "points", "passed", "first reason"):
        table.add_column(col)
    for r in out:
        who = r["teacher"] if r["role"] == "school_admin" else mask_id_number(r["teacher"])
        table.add_row(who, r["role"], fmt(r["hours"]), fmt(r["credits"]), fmt(r["points"]),
                      "yes" if r["passed"] else "no", r["reasons"][0] if r["reasons"] else "")
    Console().print(table)


def _labels(programme: str, role: str) -> dict[str, tuple[str, str]]:
    prog = load_programme_if_any(programme)
    if prog is None:
        return {}
    r = prog.roles.get(role)  # type: ignore[call-overload]  # any text: a role the programme lacks is None
    return {c.name: (c.en, c.zh) for c in r.components} if r else {}


@credits_group.command("explain")
@click.argument("teacher")
@click.option("--programme", default=None, help="Programme id (default: every programme with a result).")
@click.option("--role", default=None, type=click.Choice(["teacher", "workshop_host", "school_admin"]))
@click.option("--rules", "rule_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule file of a programme not shipped, for its cycle lines (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def explain_command(app: AppContext, teacher: str, programme: str | None, role: str | None,
                    rule_files: tuple[Path, ...], as_json: bool) -> None:
    """Show one person's stored result as a table: TEACHER is the full ID number (shown masked), the
    teacher's Moodle username, or a school code for the school_admin role. A teacher result of a programme
    with a multi-year cycle is followed by the teacher's cycle so far."""

    key = teacher.strip().upper()
    found = stored_result(app.store, key, programme, role)
    if not found:
        # A username keeps the ID number off the screen and out of shell history.
        with app.store.session() as s:
            owner = s.scalar(select(Teacher.id_number).where(Teacher.username == teacher.strip()).limit(1))
        if owner is not None:
            found = stored_result(app.store, owner, programme, role)
    if not found:
        shown = key if role == "school_admin" else mask_id_number(key)
        raise CreditbridgeError(f"no credit result for {shown}"
                                f"{' in ' + programme if programme else ''}: run `creditbridge credits evaluate`")
    cycles = {i: c for i, r in enumerate(found) if (c := _cycle_of(app, r, rule_files)) is not None}
    if as_json:
        for i, c in cycles.items():
            found[i] = {**found[i], "cycle": c}
        emit_json(found if len(found) > 1 else found[0])
        return

    words = i18n.words(app.settings.report.language)
    shown_cycles: set[str] = set()
    for i, r in enumerate(found):
        print_result(r, _labels(r["programme"], r["role"]), words=words)
        # yearly results of one cycle share its table: shown once, under the first of them
        if i in cycles and cycles[i]["cycle"] not in shown_cycles:
            shown_cycles.add(cycles[i]["cycle"])
            Console().print(cycle_table(cycles[i], words))


def _cycle_of(app: AppContext, result: dict[str, Any], rule_files: tuple[Path, ...]) -> dict[str, Any] | None:
    """The teacher's cycle status when the result's programme declares a cycle, else None. A cycle that cannot
    be added up (yearly files that disagree) is said on stderr: the yearly result is still shown."""

    if result["role"] != "teacher":
        return None
    source: str | Path = next((f for f in rule_files if load_programme(f).id == result["programme"]),
                              result["programme"])
    prog = load_programme_if_any(source)
    if prog is None or prog.cycle is None:  # no rule file, no cycle to speak of: the yearly result is all there is
        return None
    try:
        found = find_cycle(app.store, source, rule_files, teachers=[result["teacher"]])
    except CreditbridgeError as e:
        click.echo(f"cycle: {e}", err=True)
        return None
    statuses = iter_cycle_statuses(app.store, found.spec, current_year(found.reference), teachers=[result["teacher"]])
    try:
        status = next(statuses, None)
    finally:
        statuses.close()  # releases the store connections now, not when the generator is collected
    return status.as_json() if status is not None else None


@credits_group.command("cycle")
@click.option("--programme", required=True,
              help="Programme id (or rule-file path) of any year of the cycle.")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rule file of another year of the cycle that is not shipped (repeatable).")
@click.option("--as-of", "as_of", type=click.IntRange(2000, 2100), default=None,
              help="The year the cycle is seen from: later cycle years are still to come "
                   "(default: this year in the programme's time zone).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout: the list, per teacher.")
@pass_app
def cycle_command(app: AppContext, programme: str, rule_files: tuple[Path, ...], as_of: int | None,
                  as_json: bool) -> None:
    """Multi-year cycle totals per teacher, from the stored yearly results.

    Every programme in the store whose rule file declares the same cycle id counts: hours per year, the cycle
    total after the ceiling, the floor met or short, years still to come, topics covered and missing."""

    found = find_cycle(app.store, programme, rule_files)
    spec = found.spec
    year = as_of if as_of is not None else current_year(found.reference)
    for w in found.warnings:
        click.echo(f"warning: {w}", err=True)
    statuses = iter_cycle_statuses(app.store, spec, year)
    if as_json:
        # streamed like `credits evaluate --json`, the ID number masked
        n = write_json_list(s.as_json() for s in statuses)
        if interactive():
            click.echo(f"{n} teacher(s) in cycle {spec.id}", err=True)
        return
    _print_cycle(spec, year, statuses)


def _print_cycle(spec: Any, year: int, statuses: Iterable[Any], batch: int = 500) -> None:
    """A plain-text table written as it is read (a rich Table would hold every row until printed)."""

    progs = ", ".join(f"{c} ({y})" for c, y in spec.programmes) or "none in the store"
    click.echo(f"cycle {spec.id}: {spec.start_year}–{spec.last_year}, floor {fmt(spec.floor_hours)} hours, "
               f"ceiling {fmt(spec.ceiling_hours)}, {len(spec.must_cover_topics)} topic(s) to cover; "
               f"as of {year}; programmes: {progs}")
    years = list(range(spec.start_year, spec.last_year + 1))
    head = (f"{'teacher':<18}  " + "".join(f"{y:>7}" for y in years)
            + f"  {'cycle':>7}  {'floor':<12}  {'topics':>6}  missing topics")
    click.echo(head)
    n = met = complete = 0
    buf: list[str] = []
    for s in statuses:
        by_year: dict[int, list[str]] = {}
        for y in s.years:
            shown = fmt(y["hours"]) if y["counted"] == y["hours"] else f"({fmt(y['hours'])})"
            by_year.setdefault(y["year"], []).append(shown)
        cells = "".join(f"{'+'.join(by_year.get(y, ['-'])):>7}" for y in years)
        floor = "-" if s.floor_met is None else "met" if s.floor_met else f"short {fmt(s.short_hours)}"
        topics = f"{len(s.topics_covered)}/{len(spec.must_cover_topics)}" if spec.must_cover_topics else "-"
        buf.append(f"{mask_id_number(s.teacher):<18}  {cells}  {fmt(s.cycle_hours):>7}  {floor:<12}  {topics:>6}  "
                   f"{', '.join(s.topics_missing) or '-'}")
        n += 1
        met += bool(s.floor_met)
        complete += s.complete
        if len(buf) >= batch:
            click.echo("\n".join(buf))
            buf.clear()
    if buf:
        click.echo("\n".join(buf))
    click.echo(f"{n} teacher(s): floor met {met}, complete (floor and topics) {complete}; "
               "(n) = hours of a year not passed, not counted")


# `credits` is registered by outbox/commands.py, which adds `credits status` to the group: that view shows the
# outbox's figures, which the mappings flow does not import (the import contracts' layers).
COMMANDS: list[Any] = [rules_group]
