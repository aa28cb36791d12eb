"""How a followed job's status is shown: a progress bar on a terminal, plain lines when piped.

Either way, each condition that holds the job back is printed once, as soon as it shows.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from ludus.api.models import TrainingJob
from ludus.sdk import render


class StatusView(Protocol):
    def show(self, name: str, job: TrainingJob) -> None: ...

    def close(self) -> None: ...


class _Reasons:
    """Each condition that holds the job back, printed once."""

    def __init__(self, console: Console) -> None:
        self.console, self.said = console, set[str]()

    def say(self, name: str, job: TrainingJob) -> None:
        for why in render.holding_back(job):
            if why not in self.said:
                self.console.print(f"[bold]{escape(name)}[/bold]: [yellow]{escape(why)}[/yellow]", highlight=False)
                self.said.add(why)


class PlainView:
    """One line per change of the status line (phase, workers, step, loss, ETA, objective): for pipes and logs."""

    def __init__(self, console: Console) -> None:
        self.console, self.last, self.reasons = console, "", _Reasons(console)

    def show(self, name: str, job: TrainingJob) -> None:
        line = render.status_line(job)
        if line != self.last:
            self.console.print(f"[bold]{escape(name)}[/bold]: {escape(line)}", highlight=False)
            self.last = line
        self.reasons.say(name, job)

    def close(self) -> None:
        pass


class BarView:
    """A live bar: the step of the total, with phase, workers, loss, ETA and the objective beside it. The
    workers' log lines scroll above it."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[steps]}"), TextColumn("{task.fields[detail]}"),
                                 console=console, redirect_stdout=True, redirect_stderr=False)
        self.task: TaskID | None = None
        self.reasons = _Reasons(console)
        self.progress.start()

    def show(self, name: str, job: TrainingJob) -> None:
        s, p = job.status, job.status.progress
        total = float(p.total_steps) if p and p.total_steps else None
        detail = escape("  ".join(part for part in (
            f"loss {p.loss:.4g}" if p and p.loss is not None else "",
            f"ETA {p.eta}" if p and p.eta else "",
            s.evaluation.objective.summary if s.evaluation and s.evaluation.objective else "") if part))
        description, completed = escape(f"{name} {s.phase} {s.workers}"), p.step if p else 0
        steps = (f"{p.step}/{p.total_steps}" if p.total_steps else str(p.step)) if p else ""
        if self.task is None:
            self.task = self.progress.add_task(description, total=total, completed=completed, steps=steps,
                                               detail=detail)
        else:
            self.progress.update(self.task, description=description, total=total, completed=completed,
                                 steps=steps, detail=detail)
        self.reasons.say(name, job)

    def close(self) -> None:
        self.progress.stop()


def status_view(console: Console) -> StatusView:
    """A bar where a person watches (a terminal), lines where a program reads."""
    return BarView(console) if console.is_terminal else PlainView(console)
