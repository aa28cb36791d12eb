"""`ludus ct ...`, `ludus retrain|promote|history`: continuous training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ludus.sdk import render
from ludus.sdk.cli import common
from ludus.sdk.cli.common import Context, Namespace, Output, _client, _completer, app
from ludus.sdk.errors import LudusError

ct_app = typer.Typer(name="ct", help="Continuous training: retrain on a schedule or new data, keep the better model.",
                     no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(ct_app)


_complete_ct = _completer(lambda client: (x.metadata.name for x in client.list_continuous()))


CTName = Annotated[str, typer.Argument(help="the ContinuousTraining's name", autocompletion=_complete_ct)]


@ct_app.command("apply")
def ct_apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="a YAML file with one ContinuousTraining")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it on the API server, create nothing")] = False,
    script: Annotated[Path | None, typer.Option(
        help="a local Python file (or a directory with __main__.py) to run in every trial or run: shipped in a "
             "ConfigMap the resource owns")] = None,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Create a ContinuousTraining from YAML. Example: ludus ct apply -f retrain.yaml"""
    ct = _client(namespace, context).create_continuous(file, namespace, dry_run=dry_run, script=script)
    if dry_run:
        common.dump(ct.model_dump(by_alias=True, exclude_none=True, mode="json"), "yaml")
        return
    name = ct.metadata.name
    common.out.print(f"{name}   (its runs and champion: ludus history {name}; a run now: ludus retrain {name})",
                     highlight=False)


@ct_app.command("list")
def ct_list(
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Output = "table",
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """List ContinuousTrainings. Example: ludus ct list -o json"""
    found = _client(namespace, context).list_continuous(namespace, all_namespaces=all_namespaces)

    def table() -> None:
        rows = Table(box=None, header_style="bold")
        for column in ("NAMESPACE", "NAME", "PHASE", "CHAMPION", "LAST RUN", "NEXT", "PROMOTED", "REJECTED"):
            rows.add_column(column)
        for x in found:
            s = x.status
            rows.add_row(x.metadata.namespace, x.metadata.name, s.phase, s.champion_summary, s.last_run or "",
                         render.when(s.next_schedule_time), str(s.promotions), str(s.rejections))
        common.out.print(rows)

    common.emit(output, lambda: {"items": [x.model_dump(by_alias=True, exclude_none=True, mode="json")
                                           for x in found]}, table)


@ct_app.command("get")
def ct_get(name: CTName, output: Output = "yaml", namespace: Namespace = None, context: Context = None) -> None:
    """The whole resource (-o table: its runs and champion, as `ludus history`).
    Example: ludus ct get nightly -o json"""
    if output == "table":
        history(name, "table", namespace, context)
        return
    ct = _client(namespace, context).get_continuous(name, namespace)
    common.emit(output, lambda: ct.model_dump(by_alias=True, exclude_none=True, mode="json"), lambda: None)


@ct_app.command("delete")
def ct_delete(name: CTName, namespace: Namespace = None, context: Context = None) -> None:
    """Delete it and its runs (the models on the claim stay). Example: ludus ct delete nightly"""
    _client(namespace, context).delete_continuous(name, namespace)
    common.out.print(f"{name} deleted (its runs go with it; the claim keeps the models)")


@app.command()
def retrain(name: CTName, namespace: Namespace = None, context: Context = None) -> None:
    """Start a run of a ContinuousTraining now. Example: ludus retrain nightly"""
    ct = _client(namespace, context).retrain(name, namespace)
    policy = ct.spec.concurrency_policy
    waits = " (it waits for the active run: concurrencyPolicy Forbid)" if ct.status.active and policy == "Forbid" \
        else ""
    common.out.print(f"{name}: a run was requested{waits}; follow it: ludus history {name}", highlight=False)


@app.command()
def promote(name: CTName, job: Annotated[str, typer.Option("--job", help="the run whose model to serve")],
            namespace: Namespace = None, context: Context = None) -> None:
    """Make a run's model the champion by hand, the rule aside (a rollback).
    Example: ludus promote nightly --job nightly-3"""
    _client(namespace, context).promote(name, job, namespace)
    common.out.print(f"{name}: {job} will be published as the champion; ludus history {name} shows when",
                     highlight=False)


@app.command()
def history(name: CTName, output: Output = "table", namespace: Namespace = None, context: Context = None) -> None:
    """The runs, what each scored and whether it was promoted (and why not), and every champion.
    Example: ludus history nightly"""
    ct = _client(namespace, context).get_continuous(name, namespace)
    s = ct.status
    if output in ("json", "yaml"):
        common.dump({"champion": s.champion.model_dump(by_alias=True, exclude_none=True, mode="json") if s.champion
               else None, "champions": [h.model_dump(by_alias=True, exclude_none=True, mode="json")
                                        for h in s.champions],
               "runs": [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in s.runs]}, output)
        return
    if output != "table":
        raise LudusError(f"unknown output {output!r}: table, json or yaml")
    metric = s.objective.metric if s.objective else "objective"
    where = (f"{s.champion.claim_name}:{s.champion.model_path}" if s.champion and s.champion.claim_name
             else s.champion.model_path if s.champion else "")
    champion = f"{s.champion.job} at {where}" if s.champion else "none yet"
    next_run = render.when(s.next_schedule_time) or "on a trigger"
    common.out.print(f"{name}: {s.phase}; champion {champion}; next run {next_run}", highlight=False, markup=False)
    for cond in s.conditions:
        if cond.status == "False" and cond.type in ("Valid", "DataVersionAvailable"):
            common.out.print(f"  {cond.type}: {cond.reason} {cond.message}", markup=False, highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("RUN", "TRIGGER", "DATA", "PHASE", metric.upper(), "BASELINE", "PROMOTED", "WHY", "MLFLOW RUN"):
        table.add_column(column)
    for row in render.continuous_runs(ct):
        table.add_row(*row)
    common.out.print(table)
    if s.champions:
        trail = Table(box=None, header_style="bold")
        for column in ("CHAMPION", "PROMOTED", "UNTIL", "REASON"):
            trail.add_column(column)
        for h in reversed(s.champions):
            trail.add_row(h.job, render.when(h.promoted_at), render.when(h.retired_at) or "serving", h.reason)
        common.out.print(trail)

