"""`ludus`: TrainingJobs from a terminal (also `kubectl ludus`, as a kubectl plugin).

Exit codes: 0 the job succeeded (or the verb did its work), 1 the job failed, 2 a usage or spec
error, 3 a timeout, 4 the cluster is unreachable or Ludus is not installed.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ludus import __version__
from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.sdk import render
from ludus.sdk.client import LudusClient
from ludus.sdk.errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, LudusError

# torchrun's agent logs in glog format: "E1204 07:20:55.725000 1 torch/distributed/...".
_AGENT_LOG = re.compile(r"^[EWIF]\d{4} \d{2}:\d{2}:\d{2}\.\d+ ")

app = typer.Typer(name="ludus", help=__doc__, no_args_is_help=True, add_completion=True,
                  context_settings={"help_option_names": ["-h", "--help"]})
out = Console()
err = Console(stderr=True)

Namespace = Annotated[str | None, typer.Option("--namespace", "-n", help="namespace (default: the context's)")]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: the current one)")]
Output = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml")]


def _completer(names: Callable[[LudusClient], Iterable[str]]) -> Callable[[typer.Context, str], list[str]]:
    """Shell completion of names from the cluster; nothing (never an error) when it cannot list."""

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        try:
            client = LudusClient(context=ctx.params.get("context"), namespace=ctx.params.get("namespace"),
                                 request_timeout=3)
            return sorted(n for n in names(client) if n.startswith(incomplete))
        except Exception:  # noqa: BLE001 - a completion must not print a traceback into the shell
            return []

    return complete


_complete_name = _completer(lambda client: (j.metadata.name for j in client.list()))
Name = Annotated[str, typer.Argument(help="the TrainingJob's name", autocompletion=_complete_name)]


def _client(namespace: str | None, context: str | None) -> LudusClient:
    return LudusClient(context=context, namespace=namespace)


def _print(jobs: list[TrainingJob], output: str, single: bool = False) -> None:
    if output == "json":
        data: Any = render.as_dict(jobs[0]) if single else {"items": [render.as_dict(j) for j in jobs]}
        out.print_json(json.dumps(data))
    elif output == "yaml":
        data = render.as_dict(jobs[0]) if single else {"items": [render.as_dict(j) for j in jobs]}
        out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
    elif output == "table":
        table = Table(box=None, header_style="bold")
        for column in render.COLUMNS:
            table.add_column(column)
        for job in jobs:
            table.add_row(*render.row(job))
        out.print(table)
    else:
        raise LudusError(f"unknown output {output!r}: table, json or yaml")


def _version(value: bool) -> None:
    if value:
        out.print(f"ludus {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version")] = False) -> None:
    """TrainingJobs from a terminal. Example: ludus run train.py --replicas 2 --nproc 2"""


def follow(client: LudusClient, name: str, namespace: str | None, delete_on_interrupt: bool = False) -> int:
    """Print the workers' logs and the job's progress until it ends; the exit code says how."""
    # torchrun's own error report alone is ~20 lines: keep enough to show the script's last words too.
    tails: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=60))
    stop = threading.Event()

    def logs() -> None:
        for line in client.logs(name, namespace, follow=True):
            prefix, _, text = line.partition(" ")
            if not _AGENT_LOG.match(text):  # torchrun's own log lines repeat the workers' tracebacks
                tails[prefix].append(line)
            if not stop.is_set():
                out.print(line, markup=False, highlight=False, soft_wrap=True)  # a log line stays one line

    threading.Thread(target=logs, daemon=True).start()
    last = ""
    try:
        while True:
            job = client.get(name, namespace)
            s = job.status
            line = f"{s.phase} {s.workers}" + (f"  step {s.progress.summary}" if s.progress else "")
            if s.progress and s.progress.loss is not None:
                line += f"  loss {s.progress.loss:.4g}"
            if s.progress and s.progress.eta:
                line += f"  ETA {s.progress.eta}"
            if s.evaluation and s.evaluation.objective and s.evaluation.objective.summary:
                line += f"  {s.evaluation.objective.summary}"
            if line != last:
                err.print(f"[bold]{name}[/bold]: {line}", highlight=False)
                last = line
            if s.phase in c.TERMINAL_PHASES:
                break
            time.sleep(2)
    except KeyboardInterrupt:
        stop.set()
        if delete_on_interrupt:
            client.delete(name, namespace)
            err.print(f"interrupted: deleted {name}")
        else:
            err.print(f"detached; {name} keeps running. Follow it again: ludus logs -f {name}"
                      + (f" -n {namespace}" if namespace else ""))
        return EXIT_INTERRUPTED
    time.sleep(1)  # the last lines
    stop.set()
    if job.status.evaluation:
        for metric, value in sorted(job.status.evaluation.latest.items()):
            out.print(f"  {metric:<12} {value.value:.4f}")
    if job.status.phase == c.PHASE_SUCCEEDED:
        err.print(f"{name} Succeeded")
        return EXIT_OK
    failed = next((x for x in job.status.conditions if x.type == c.COND_FAILED), None)
    err.print(f"{name} Failed: {failed.reason + ': ' + failed.message if failed else ''}")
    for prefix, lines in sorted(tails.items()):
        err.print(f"last lines of {prefix}:", markup=False, highlight=False)
        for text in lines:
            err.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_JOB_FAILED


@app.command()
def run(
    script: Annotated[Path, typer.Argument(help="a Python file, or a directory with __main__.py")],
    args: Annotated[list[str] | None, typer.Argument(help="arguments for the script (after --)")] = None,
    replicas: Annotated[int, typer.Option(help="worker pods")] = 1,
    nproc: Annotated[str, typer.Option(help="processes per pod (auto: one per GPU, or 1)")] = "auto",
    gpus: Annotated[int, typer.Option(help="GPUs per pod")] = 0,
    image: Annotated[str, typer.Option(help="the trainer image")] = "ludus-trainer:latest",
    name: Annotated[str | None, typer.Option(help="job name (default: from the script's name)")] = None,
    cpu: Annotated[str | None, typer.Option(help="CPU per pod, e.g. 500m")] = None,
    memory: Annotated[str | None, typer.Option(help="memory per pod, e.g. 3Gi")] = None,
    restart_policy: Annotated[str, typer.Option(help="OnFailure, ExitCode or Never")] = "OnFailure",
    backoff_limit: Annotated[int | None, typer.Option(help="worker recreations before the job fails")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="print the name and return")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the TrainingJob it would create")] = False,
    delete_on_interrupt: Annotated[bool, typer.Option(help="Ctrl-C deletes the job")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Run a local script as a TrainingJob and follow it. Example: ludus run train.py --replicas 2 -- --lr 0.01"""
    client = _client(namespace, context)
    nproc_value: int | str = int(nproc) if nproc.isdigit() else nproc
    job = client.train(script, name=name, namespace=namespace, replicas=replicas, nproc=nproc_value, gpus=gpus,
                       image=image, args=args or [], cpu=cpu, memory=memory, restart_policy=restart_policy,
                       backoff_limit=backoff_limit, dry_run=dry_run)
    if dry_run:
        out.print(yaml.safe_dump(render.as_dict(job), sort_keys=False), end="", markup=False, highlight=False)
        return
    out.print(job.metadata.name)
    if not detach:
        raise typer.Exit(follow(client, job.metadata.name, namespace, delete_on_interrupt))


@app.command()
def apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="a YAML file with one TrainingJob")],
    detach: Annotated[bool, typer.Option("--detach", "-d", help="print the name and return")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it on the API server, create nothing")] = False,
    delete_on_interrupt: Annotated[bool, typer.Option(help="Ctrl-C deletes the job")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Create a TrainingJob from YAML and follow it. Example: ludus apply -f job.yaml --detach"""
    client = _client(namespace, context)
    job = client.create(file, namespace, dry_run=dry_run)
    if dry_run:
        out.print(yaml.safe_dump(render.as_dict(job), sort_keys=False), end="", markup=False, highlight=False)
        return
    out.print(job.metadata.name)
    if not detach:
        raise typer.Exit(follow(client, job.metadata.name, job.metadata.namespace, delete_on_interrupt))


@app.command("list")
def list_jobs(
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="label selector")] = None,
    output: Output = "table",
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """List TrainingJobs. Example: ludus list -A"""
    jobs = _client(namespace, context).list(namespace, label_selector=selector, all_namespaces=all_namespaces)
    _print(jobs, output)


@app.command()
def get(name: Name, output: Output = "table", namespace: Namespace = None, context: Context = None) -> None:
    """One TrainingJob. Example: ludus get digits -o yaml"""
    _print([_client(namespace, context).get(name, namespace)], output, single=True)


@app.command()
def describe(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """Phase, conditions, restarts and their causes, progress, evaluation, goodput, events.
    Example: ludus describe digits -n team-a"""
    client = _client(namespace, context)
    out.print(render.describe(client.get(name, namespace), client.events(name, namespace)), markup=False,
              highlight=False)


@app.command()
def logs(
    name: Name,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="keep following, across restarts")] = False,
    rank: Annotated[int | None, typer.Option(help="only this worker pod (its index)")] = None,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Every worker's log lines. Example: ludus logs digits -f"""
    client = _client(namespace, context)
    try:  # the notice inside: a Ctrl-C right after it is still caught below
        if follow_:
            err.print(f"following {name}'s logs until it ends (Ctrl-C stops following; the job keeps running)",
                      highlight=False)
        for line in client.logs(name, namespace, follow=follow_, rank=rank):
            out.print(line, markup=False, highlight=False, soft_wrap=True)  # never wrapped: pipes and greps read it
    except KeyboardInterrupt:
        err.print(f"stopped following; {name} keeps running. Follow it again: ludus logs -f {name}"
                  + (f" -n {namespace}" if namespace else ""))
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command()
def wait(
    name: Name,
    for_: Annotated[str, typer.Option("--for", help="a phase, or condition=TYPE")] = "Succeeded",
    timeout: Annotated[str, typer.Option(help="e.g. 90s, 30m, 1h")] = "30m",
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Wait for a phase (default Succeeded; a Failed job ends the wait with exit 1). Example: ludus wait digits"""
    try:
        seconds = render.parse_duration(timeout)
    except ValueError as error:
        raise LudusError(str(error)) from error
    client = _client(namespace, context)
    if for_.startswith("condition="):
        job = client.wait(name, namespace, condition=for_.split("=", 1)[1], timeout=seconds)
    else:
        job = client.wait(name, namespace, phases={for_, *c.TERMINAL_PHASES}, timeout=seconds)
    out.print(f"{name} {job.status.phase}")
    if job.status.phase == c.PHASE_FAILED and for_ != c.PHASE_FAILED:
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command()
def events(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """The job's Events. Example: ludus events digits"""
    table = Table(box=None, header_style="bold")
    for column in ("TIME", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    for event in _client(namespace, context).events(name, namespace):
        table.add_row(str(event["time"] or ""), event["type"] or "", event["reason"] or "", event["message"] or "")
    out.print(table)


@app.command()
def suspend(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """Suspend: the pods go, the job stays. Example: ludus suspend digits"""
    _client(namespace, context).suspend(name, namespace)
    out.print(f"{name} suspended")


@app.command()
def resume(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """Resume a suspended job (from its checkpoint). Example: ludus resume digits"""
    _client(namespace, context).resume(name, namespace)
    out.print(f"{name} resumed")


@app.command()
def scale(name: Name, replicas: Annotated[int, typer.Argument(help="worker pods")],
          namespace: Namespace = None, context: Context = None) -> None:
    """Change the worker count (within the elastic range). Example: ludus scale digits 4"""
    _client(namespace, context).scale(name, replicas, namespace)
    out.print(f"{name} scaled to {replicas}")


@app.command()
def delete(name: Name, wait_: Annotated[bool, typer.Option("--wait", help="until the pods are gone")] = False,
           namespace: Namespace = None, context: Context = None) -> None:
    """Delete a job and its pods. Example: ludus delete digits --wait"""
    _client(namespace, context).delete(name, namespace, wait=wait_)
    out.print(f"{name} deleted")


sweep_app = typer.Typer(name="sweep", help="Hyperparameter sweeps: trials of a TrainingJob, the best kept.",
                        no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(sweep_app)


_complete_sweep = _completer(lambda client: (x.metadata.name for x in client.list_sweeps()))


SweepName = Annotated[str, typer.Argument(help="the Sweep's name", autocompletion=_complete_sweep)]


@sweep_app.command("apply")
def sweep_apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="a YAML file with one Sweep")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it on the API server, create nothing")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Create a Sweep from YAML. Example: ludus sweep apply -f sweep.yaml"""
    sweep = _client(namespace, context).create_sweep(file, namespace, dry_run=dry_run)
    if dry_run:
        data = sweep.model_dump(by_alias=True, exclude_none=True, mode="json")
        out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
        return
    out.print(f"{sweep.metadata.name}   (follow it: ludus sweep get {sweep.metadata.name}; its trials: "
              f"ludus list -l ludus.dev/sweep={sweep.metadata.name})", highlight=False)


@sweep_app.command("list")
def sweep_list(
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """List Sweeps. Example: ludus sweep list"""
    table = Table(box=None, header_style="bold")
    for column in ("NAMESPACE", "NAME", "PHASE", "TRIALS", "RUNNING", "BEST"):
        table.add_column(column)
    for s in _client(namespace, context).list_sweeps(namespace, all_namespaces=all_namespaces):
        table.add_row(s.metadata.namespace, s.metadata.name, s.status.phase, s.status.progress,
                      str(s.status.running), s.status.best_summary)
    out.print(table)


@sweep_app.command("get")
def sweep_get(name: SweepName, output: Output = "table", namespace: Namespace = None,
              context: Context = None) -> None:
    """A Sweep and its trials, best objective first. Example: ludus sweep get tune"""
    sweep = _client(namespace, context).get_sweep(name, namespace)
    if output in ("json", "yaml"):
        data = sweep.model_dump(by_alias=True, exclude_none=True, mode="json")
        if output == "json":
            out.print_json(json.dumps(data))
        else:
            out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
        return
    if output != "table":
        raise LudusError(f"unknown output {output!r}: table, json or yaml")
    s = sweep.status
    objective = s.objective.metric if s.objective else "objective"
    out.print(f"{name}: {s.phase}, {s.progress} trials finished, {s.running} running, {s.stopped} stopped early, "
              f"{s.failed} failed", highlight=False)
    for cond in s.conditions:
        if cond.status == "True":
            out.print(f"  {cond.type}: {cond.reason} {cond.message}", markup=False, highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("TRIAL", "PHASE", objective.upper(), "PARAMETERS"):
        table.add_column(column)
    for row in render.sweep_trials(sweep):
        table.add_row(*row)
    out.print(table)


@sweep_app.command("best")
def sweep_best(name: SweepName, namespace: Namespace = None, context: Context = None) -> None:
    """The best trial: its name, values and every evaluation metric. Example: ludus sweep best tune"""
    best = _client(namespace, context).get_sweep(name, namespace).status.best
    if best is None:
        err.print(f"{name} has no finished trial with an objective value yet")
        raise typer.Exit(EXIT_JOB_FAILED)
    out.print(f"{best.name}  (trial {best.number})", highlight=False)
    for key, value in sorted(best.parameters.items()):
        out.print(f"  {key:<14} {value}", highlight=False)
    for metric, number in sorted(best.metrics.items()):
        out.print(f"  {metric:<14} {number:.4f}", highlight=False)


@sweep_app.command("delete")
def sweep_delete(name: SweepName, namespace: Namespace = None, context: Context = None) -> None:
    """Delete a Sweep and every trial. Example: ludus sweep delete tune"""
    _client(namespace, context).delete_sweep(name, namespace)
    out.print(f"{name} deleted (its trials go with it)")


ct_app = typer.Typer(name="ct", help="Continuous training: retrain on a schedule or new data, keep the better model.",
                     no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(ct_app)


_complete_ct = _completer(lambda client: (x.metadata.name for x in client.list_continuous()))


CTName = Annotated[str, typer.Argument(help="the ContinuousTraining's name", autocompletion=_complete_ct)]


def _dump(data: dict[str, Any], output: str) -> None:
    if output == "json":
        out.print_json(json.dumps(data))
    else:
        out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)


@ct_app.command("apply")
def ct_apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="a YAML file with one ContinuousTraining")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check it on the API server, create nothing")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Create a ContinuousTraining from YAML. Example: ludus ct apply -f retrain.yaml"""
    ct = _client(namespace, context).create_continuous(file, namespace, dry_run=dry_run)
    if dry_run:
        _dump(ct.model_dump(by_alias=True, exclude_none=True, mode="json"), "yaml")
        return
    name = ct.metadata.name
    out.print(f"{name}   (its runs and champion: ludus history {name}; a run now: ludus retrain {name})",
              highlight=False)


@ct_app.command("list")
def ct_list(
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """List ContinuousTrainings. Example: ludus ct list"""
    table = Table(box=None, header_style="bold")
    for column in ("NAMESPACE", "NAME", "PHASE", "CHAMPION", "LAST RUN", "NEXT", "PROMOTED", "REJECTED"):
        table.add_column(column)
    for x in _client(namespace, context).list_continuous(namespace, all_namespaces=all_namespaces):
        s = x.status
        table.add_row(x.metadata.namespace, x.metadata.name, s.phase, s.champion_summary, s.last_run or "",
                      render.when(s.next_schedule_time), str(s.promotions), str(s.rejections))
    out.print(table)


@ct_app.command("get")
def ct_get(name: CTName, output: Output = "yaml", namespace: Namespace = None, context: Context = None) -> None:
    """The whole resource. Example: ludus ct get nightly -o json"""
    if output not in ("json", "yaml"):
        raise LudusError(f"unknown output {output!r}: json or yaml (ludus history {name} for a table)")
    ct = _client(namespace, context).get_continuous(name, namespace)
    _dump(ct.model_dump(by_alias=True, exclude_none=True, mode="json"), output)


@ct_app.command("delete")
def ct_delete(name: CTName, namespace: Namespace = None, context: Context = None) -> None:
    """Delete it and its runs (the models on the claim stay). Example: ludus ct delete nightly"""
    _client(namespace, context).delete_continuous(name, namespace)
    out.print(f"{name} deleted (its runs go with it; the claim keeps the models)")


@app.command()
def retrain(name: CTName, namespace: Namespace = None, context: Context = None) -> None:
    """Start a run of a ContinuousTraining now. Example: ludus retrain nightly"""
    ct = _client(namespace, context).retrain(name, namespace)
    policy = ct.spec.concurrency_policy
    waits = " (it waits for the active run: concurrencyPolicy Forbid)" if ct.status.active and policy == "Forbid" \
        else ""
    out.print(f"{name}: a run was requested{waits}; follow it: ludus history {name}", highlight=False)


@app.command()
def promote(name: CTName, job: Annotated[str, typer.Option("--job", help="the run whose model to serve")],
            namespace: Namespace = None, context: Context = None) -> None:
    """Make a run's model the champion by hand, the rule aside (a rollback).
    Example: ludus promote nightly --job nightly-3"""
    _client(namespace, context).promote(name, job, namespace)
    out.print(f"{name}: {job} will be published as the champion; ludus history {name} shows when", highlight=False)


@app.command()
def history(name: CTName, output: Output = "table", namespace: Namespace = None, context: Context = None) -> None:
    """The runs, what each scored and whether it was promoted (and why not), and every champion.
    Example: ludus history nightly"""
    ct = _client(namespace, context).get_continuous(name, namespace)
    s = ct.status
    if output in ("json", "yaml"):
        _dump({"champion": s.champion.model_dump(by_alias=True, exclude_none=True, mode="json") if s.champion
               else None, "champions": [h.model_dump(by_alias=True, exclude_none=True, mode="json")
                                        for h in s.champions],
               "runs": [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in s.runs]}, output)
        return
    if output != "table":
        raise LudusError(f"unknown output {output!r}: table, json or yaml")
    metric = s.objective.metric if s.objective else "objective"
    champion = f"{s.champion.job} at {s.champion.claim_name}:{s.champion.model_path}" if s.champion else "none yet"
    out.print(f"{name}: {s.phase}; champion {champion}; next run {render.when(s.next_schedule_time) or 'on a trigger'}",
              highlight=False, markup=False)
    for cond in s.conditions:
        if cond.status == "False" and cond.type in ("Valid", "DataVersionAvailable"):
            out.print(f"  {cond.type}: {cond.reason} {cond.message}", markup=False, highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("RUN", "TRIGGER", "DATA", "PHASE", metric.upper(), "PROMOTED", "WHY"):
        table.add_column(column)
    for row in render.continuous_runs(ct):
        table.add_row(*row)
    out.print(table)
    if s.champions:
        trail = Table(box=None, header_style="bold")
        for column in ("CHAMPION", "PROMOTED", "UNTIL", "REASON"):
            trail.add_column(column)
        for h in reversed(s.champions):
            trail.add_row(h.job, render.when(h.promoted_at), render.when(h.retired_at) or "serving", h.reason)
        out.print(trail)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; LudusErrors become their message and exit code, never a stack trace."""
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of exiting.
        result = app(args=argv, prog_name="ludus", standalone_mode=False)
    except LudusError as error:
        err.print(f"error: {error}", markup=False, highlight=False)
        return error.exit_code
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except typer.Abort as error:
        err.print(f"error: {error or 'aborted'}", markup=False, highlight=False)
        return EXIT_USAGE
    except typer.TyperException as error:  # usage errors: an unknown option, a missing argument
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {error}", markup=False, highlight=False)
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_OK


def kubectl_complete(argv: list[str] | None = None) -> int:
    """`kubectl_complete-ludus`: completion for `kubectl ludus ...`. kubectl runs it with the words so
    far, the last being the one to complete, and reads one candidate per line and a `:directive`."""
    # typer vendors click: its own completer is the one that understands its commands.
    from typer._completion_classes import BashComplete

    words = list(sys.argv[1:] if argv is None else argv)
    incomplete = words.pop() if words else ""
    completer = BashComplete(typer.main.get_command(app), {}, "ludus", "_LUDUS_COMPLETE")
    for item in completer.get_completions(words, incomplete):
        print(item.value)
    print(":4")  # cobra's ShellCompDirectiveNoFileComp: offer these, not file names
    return 0


if __name__ == "__main__":
    sys.exit(main())
