"""`ludus run|apply|list|get|describe|logs|wait|events|suspend|resume|scale|delete`: TrainingJobs."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from ludus.api import constants as c
from ludus.sdk import render
from ludus.sdk.cli import common
from ludus.sdk.cli.common import Context, Name, Namespace, Output, _client, _print, app
from ludus.sdk.cli.status_view import status_view
from ludus.sdk.client import LudusClient
from ludus.sdk.errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, LudusError

# torchrun's agent logs in glog format: "E1204 07:20:55.725000 1 torch/distributed/...".
_AGENT_LOG = re.compile(r"^[EWIF]\d{4} \d{2}:\d{2}:\d{2}\.\d+ ")


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
                common.out.print(line, markup=False, highlight=False, soft_wrap=True)  # a log line stays one line

    threading.Thread(target=logs, daemon=True).start()
    view = status_view(common.err)
    try:
        while True:
            job = client.get(name, namespace)
            view.show(name, job)
            if job.status.phase in c.TERMINAL_PHASES:
                break
            time.sleep(2)
    except KeyboardInterrupt:
        stop.set()
        view.close()
        if delete_on_interrupt:
            client.delete(name, namespace)
            common.err.print(f"interrupted: deleted {name}")
        else:
            common.err.print(f"detached; {name} keeps running. Follow it again: ludus logs -f {name}"
                             + (f" -n {namespace}" if namespace else ""))
        return EXIT_INTERRUPTED
    view.close()
    time.sleep(1)  # the last lines
    stop.set()
    if job.status.evaluation:
        for metric, value in sorted(job.status.evaluation.latest.items()):
            common.out.print(f"  {metric:<12} {value.value:.4f}")
    if job.status.phase == c.PHASE_SUCCEEDED:
        common.err.print(f"{name} Succeeded")
        return EXIT_OK
    failed = next((x for x in job.status.conditions if x.type == c.COND_FAILED), None)
    common.err.print(f"{name} Failed: {failed.reason + ': ' + failed.message if failed else ''}")
    for prefix, lines in sorted(tails.items()):
        common.err.print(f"last lines of {prefix}:", markup=False, highlight=False)
        for text in lines:
            common.err.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)
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
    objective: Annotated[str | None, typer.Option(
        help="METRIC:max|min, e.g. accuracy:max (default: the loss the script reports, minimized)")] = None,
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
                       backoff_limit=backoff_limit, dry_run=dry_run, objective=objective)
    if dry_run:
        common.out.print(yaml.safe_dump(render.as_dict(job), sort_keys=False), end="", markup=False, highlight=False)
        return
    common.out.print(job.metadata.name)
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
        common.out.print(yaml.safe_dump(render.as_dict(job), sort_keys=False), end="", markup=False, highlight=False)
        return
    common.out.print(job.metadata.name)
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
def describe(name: Name, output: Output = "table", namespace: Namespace = None, context: Context = None) -> None:
    """Phase, conditions, restarts and their causes, progress, evaluation, goodput, events.
    Example: ludus describe digits -n team-a"""
    client = _client(namespace, context)
    job, events_ = client.get(name, namespace), client.events(name, namespace)
    common.emit(output, lambda: {**render.as_dict(job), "events": events_},
                lambda: common.out.print(render.describe(job, events_), markup=False, highlight=False))


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
            common.err.print(f"following {name}'s logs until it ends (Ctrl-C stops following; the job keeps running)",
                             highlight=False)
        for line in client.logs(name, namespace, follow=follow_, rank=rank):
            # Never wrapped: pipes and greps read it.
            common.out.print(line, markup=False, highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        common.err.print(f"stopped following; {name} keeps running. Follow it again: ludus logs -f {name}"
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
    common.out.print(f"{name} {job.status.phase}")
    if job.status.phase == c.PHASE_FAILED and for_ != c.PHASE_FAILED:
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command()
def events(name: Name, output: Output = "table", namespace: Namespace = None, context: Context = None) -> None:
    """The job's Events. Example: ludus events digits -o json"""
    found = _client(namespace, context).events(name, namespace)

    def table() -> None:
        rows = Table(box=None, header_style="bold")
        for column in ("TIME", "TYPE", "REASON", "MESSAGE"):
            rows.add_column(column)
        for event in found:
            rows.add_row(str(event["time"] or ""), event["type"] or "", event["reason"] or "", event["message"] or "")
        common.out.print(rows)

    common.emit(output, lambda: {"items": found}, table)


@app.command()
def suspend(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """Suspend: the pods go, the job stays. Example: ludus suspend digits"""
    _client(namespace, context).suspend(name, namespace)
    common.out.print(f"{name} suspended")


@app.command()
def resume(name: Name, namespace: Namespace = None, context: Context = None) -> None:
    """Resume a suspended job (from its checkpoint). Example: ludus resume digits"""
    _client(namespace, context).resume(name, namespace)
    common.out.print(f"{name} resumed")


@app.command()
def scale(name: Name, replicas: Annotated[int, typer.Argument(help="worker pods")],
          namespace: Namespace = None, context: Context = None) -> None:
    """Change the worker count (within the elastic range). Example: ludus scale digits 4"""
    _client(namespace, context).scale(name, replicas, namespace)
    common.out.print(f"{name} scaled to {replicas}")


@app.command()
def delete(name: Name, wait_: Annotated[bool, typer.Option("--wait", help="until the pods are gone")] = False,
           namespace: Namespace = None, context: Context = None) -> None:
    """Delete a job and its pods. Example: ludus delete digits --wait"""
    _client(namespace, context).delete(name, namespace, wait=wait_)
    common.out.print(f"{name} deleted")

