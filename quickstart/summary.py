"""What a person sees: a progress line per step while it runs, then what happened and where to look."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from creditbridge.quickstart.run import StepResult


class RichProgress:
    """One spinner (or bar, when the step knows its size) per step; a check line when it ends."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = RichBar(SpinnerColumn(), TextColumn("{task.description}"),
                           TextColumn("[dim]{task.fields[note]}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=console, transient=True)
        self.task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.stop()

    def begin(self, key: str, title: str, total: int | None = None) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        # Short while it runs (the bar needs the room); the full title is printed when the step ends.
        self.task = self.bar.add_task(TITLES.get(key, key).ljust(13), total=total, note="")

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def update(self, note: str, done: int, total: int | None) -> None:
        """A step's own progress (sync reports stages such as 'users' with done of total)."""
        if self.task is not None:
            self.bar.update(self.task, completed=done, total=total, note=note)

    def end(self, step: StepResult) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        self.console.print(f"[green]✓[/] {escape(step.title)} [dim]{step.seconds:6.2f} s[/]")
        if step.detail:
            self.console.print(f"  [dim]{escape(step.detail)}[/]")


def _cmd(config: str, *args: str) -> str:
    return " ".join(["creditbridge", "--config", shlex.quote(_shown(config)), *args])


def _shown(path: str) -> str:
    """Relative to where the user stands when it is below it: shorter commands to copy."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _plural(n: int | None, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def render(summary: dict[str, Any], *, color: bool = True, steps_table: bool = True) -> None:
    """The end of a run: the outcome, what each step did (unless the progress lines already said it),
    and where to look next."""
    out = Console(file=sys.stdout, no_color=not color, highlight=False, soft_wrap=True)
    s = summary
    steps = s["steps"]
    rate = 100.0 * s["passed"] / s["teachers"] if s["teachers"] else 0.0
    lines = [
        f"[bold]{s['teachers']}[/] teachers in {_plural(s['schools'], 'school')} went through the whole sd-2022 path "
        f"in [bold]{s['seconds']:.1f} s[/].",
        f"[bold green]{s['passed']}[/] passed ({rate:.0f}%), {s['not_passed']} not yet; "
        f"[bold]{s['credits_registered']}[/] credit records registered once each ({s['credits_total']:g} credits), "
        f"{s['rejected']} rejected, {s['pending']} pending.",
    ]
    if s.get("not_passed_reasons"):
        top = "; ".join(f"{reason} ({_plural(n, 'teacher')})" for reason, n in s["not_passed_reasons"].items())
        lines.append(f"[dim]Why not yet: {escape(top)}[/]")
    wh, rc = steps.get("webhooks", {}), steps.get("reconcile", {})
    if wh:
        lines.append(f"[dim]{wh.get('received')} completions arrived as signed webhooks; reconciliation recovered "
                     f"the {rc.get('created', 0)} whose webhook was lost, without recording any twice.[/]")
    out.print(Panel("\n".join(lines), title="creditbridge quickstart", border_style="green", expand=False),
              soft_wrap=False)

    if steps_table:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("step")
        table.add_column("what happened")
        table.add_column("time", justify="right")
        for key, name in TITLES.items():
            if key in steps:
                table.add_row(name, escape(_line(key, steps[key])), f"{steps[key]['seconds']:.2f} s")
        out.print(table, soft_wrap=False)

    cfg = s["config"]
    out.print()
    out.print("[bold]Look at the results[/]")
    rows = [("the report (opens offline)", _shown(s["report"])), ("as a spreadsheet", _shown(s["report_xlsx"]))]
    if s.get("sample_teacher"):
        rows.append(("why a teacher has not passed" if s["not_passed"] else "how a teacher passed",
                     _cmd(cfg, "credits", "explain", s["sample_teacher"])))
    rows += [("rebuild the report", _cmd(cfg, "report")), ("the webhook inbox", _cmd(cfg, "intake", "status")),
             ("push again (sends nothing)", _cmd(cfg, "push"))]
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        out.print(f"  {(label + ':').ljust(width)} {escape(value)}")
    out.print(f"  [dim]{escape(_shown(cfg))} points at this run's store; the next quickstart replaces "
              f"what it wrote in {escape(_shown(s['dir']))}[/]")
    out.print()
    out.print("[bold]Point it at a real Moodle[/]")
    out.print("  creditbridge init                  # a commented creditbridge.toml: set moodle.url, database.url")
    out.print("  export CREDITBRIDGE_MOODLE_TOKEN=… # token of the site's external service for creditbridge")
    out.print("  creditbridge moodle check          # lists the web-service functions that service still lacks")
    out.print("  then install the plugin in local_creditbridge/ (it sends the webhooks): docs/moodle.md, "
              "docs/quickstart.md")


TITLES = {"province": "generate", "services": "services", "catalog": "sync catalog", "topics": "sync topics",
          "roster": "sync roster", "completions": "completions", "webhooks": "webhooks", "reconcile": "reconcile",
          "evaluate": "evaluate", "push": "push", "report": "report"}


def _line(key: str, c: dict[str, Any]) -> str:
    g = c.get
    if key == "province":
        return (f"{g('teachers')} teachers, {_plural(g('schools'), 'school')}, "
                f"{_plural(g('counties'), 'county', 'counties')}, {_plural(g('cities'), 'city', 'cities')}, "
                f"{g('courses')} courses, as provincial exports")
    if key == "services":
        return "sandbox LMS, webhook receiver and registry-sim on 127.0.0.1"
    if key == "catalog":
        return f"{g('created')} courses created, {g('lms_calls')} LMS write calls"
    if key == "topics":
        return f"{g('created')} school topic choices"
    if key == "roster":
        return (f"{g('created')} teachers created, {g('lesson_cases_assigned')} lesson cases assigned, "
                f"{g('lms_calls')} LMS write calls")
    if key == "completions":
        short = (g("teachers_missed_lesson_case") or 0) + (g("teachers_few_electives") or 0)
        return (f"{g('completions')} course completions: {g('teachers_finished') or 0} teachers finished, "
                f"{short} stopped short, {g('teachers_not_started') or 0} never started")
    if key == "webhooks":
        return f"{g('received')} signed deliveries stored, {g('records')} learning records, {g('parked')} parked"
    if key == "reconcile":
        return f"{g('already_known')} already known, {g('created')} recovered from lost webhooks"
    if key == "evaluate":
        return f"{g('evaluated')} results, {g('passed')} passed, {g('failed')} not yet"
    if key == "push":
        return f"{g('acknowledged')} acknowledged, {g('rejected')} rejected, {g('pending')} pending"
    if key == "report":
        return "XLSX and one HTML page with charts"
    return ""
