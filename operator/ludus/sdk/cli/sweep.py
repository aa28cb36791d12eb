"""`ludus sweep ...`: hyperparameter sweeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from ludus.sdk import render
from ludus.sdk.cli import common
from ludus.sdk.cli.common import Context, Namespace, Output, _client, _completer, app
from ludus.sdk.errors import EXIT_JOB_FAILED, LudusError

sweep_app = typer.Typer(name="sweep", help="Hyperparameter sweeps: trials of a TrainingJob, the best kept.",
                        no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(sweep_app)


_complete_sweep = _completer(lambda client: (x.metadata.name for x in client.list_sweeps()))


SweepName = Annotated[str, typer.Argument(help="the Sweep's name", autocompletion=_complete_sweep)]


@sweep_app.command("apply")
def sweep_apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="a YAML file with one Sweep")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it on the API server, create nothing")] = False,
    script: Annotated[Path | None, typer.Option(
        help="a local Python file (or a directory with __main__.py) to run in every trial or run: shipped in a "
             "ConfigMap the resource owns")] = None,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Create a Sweep from YAML. Example: ludus sweep apply -f sweep.yaml"""
    sweep = _client(namespace, context).create_sweep(file, namespace, dry_run=dry_run, script=script)
    if dry_run:
        data = sweep.model_dump(by_alias=True, exclude_none=True, mode="json")
        common.out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
        return
    common.out.print(f"{sweep.metadata.name}   (follow it: ludus sweep get {sweep.metadata.name}; its trials: "
                     f"ludus list -l ludus.dev/sweep={sweep.metadata.name})", highlight=False)


@sweep_app.command("list")
def sweep_list(
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Output = "table",
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """List Sweeps. Example: ludus sweep list -o yaml"""
    sweeps = _client(namespace, context).list_sweeps(namespace, all_namespaces=all_namespaces)

    def table() -> None:
        rows = Table(box=None, header_style="bold")
        for column in ("NAMESPACE", "NAME", "PHASE", "TRIALS", "RUNNING", "BEST"):
            rows.add_column(column)
        for s in sweeps:
            rows.add_row(s.metadata.namespace, s.metadata.name, s.status.phase, s.status.progress,
                         str(s.status.running), s.status.best_summary)
        common.out.print(rows)

    common.emit(output, lambda: {"items": [s.model_dump(by_alias=True, exclude_none=True, mode="json")
                                           for s in sweeps]}, table)


@sweep_app.command("get")
def sweep_get(name: SweepName, output: Output = "table", namespace: Namespace = None,
              context: Context = None) -> None:
    """A Sweep and its trials, best objective first. Example: ludus sweep get tune"""
    sweep = _client(namespace, context).get_sweep(name, namespace)
    if output in ("json", "yaml"):
        data = sweep.model_dump(by_alias=True, exclude_none=True, mode="json")
        if output == "json":
            common.out.print_json(json.dumps(data))
        else:
            common.out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
        return
    if output != "table":
        raise LudusError(f"unknown output {output!r}: table, json or yaml")
    s = sweep.status
    objective = s.objective.metric if s.objective else "objective"
    common.out.print(f"{name}: {s.phase}, {s.progress} trials finished, {s.running} running, "
                     f"{s.stopped} stopped early, {s.failed} failed", highlight=False)
    for cond in s.conditions:
        if cond.status == "True":
            common.out.print(f"  {cond.type}: {cond.reason} {cond.message}", markup=False, highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("TRIAL", "PHASE", objective.upper(), "PARAMETERS", "MLFLOW RUN"):
        table.add_column(column)
    for row in render.sweep_trials(sweep):
        table.add_row(*row)
    common.out.print(table)


@sweep_app.command("best")
def sweep_best(name: SweepName, output: Output = "table", namespace: Namespace = None,
               context: Context = None) -> None:
    """The best trial: its name, values and every evaluation metric. Example: ludus sweep best tune"""
    best = _client(namespace, context).get_sweep(name, namespace).status.best
    if best is None:
        common.err.print(f"{name} has no finished trial with an objective value yet")
        raise typer.Exit(EXIT_JOB_FAILED)

    def table() -> None:
        common.out.print(f"{best.name}  (trial {best.number})", highlight=False)
        for key, value in sorted(best.parameters.items()):
            common.out.print(f"  {key:<14} {value}", highlight=False)
        for metric, number in sorted(best.metrics.items()):
            common.out.print(f"  {metric:<14} {number:.4f}", highlight=False)

    common.emit(output, lambda: best.model_dump(by_alias=True, exclude_none=True, mode="json"), table)


@sweep_app.command("delete")
def sweep_delete(name: SweepName, namespace: Namespace = None, context: Context = None) -> None:
    """Delete a Sweep and every trial. Example: ludus sweep delete tune"""
    _client(namespace, context).delete_sweep(name, namespace)
    common.out.print(f"{name} deleted (its trials go with it)")

