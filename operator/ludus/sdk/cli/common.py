"""What every `ludus` command shares: the app, the consoles, the options, the client and the table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ludus import __version__
from ludus.api.models import TrainingJob
from ludus.sdk import render
from ludus.sdk.client import LudusClient
from ludus.sdk.errors import LudusError

HELP = """`ludus`: TrainingJobs from a terminal (also `kubectl ludus`, as a kubectl plugin).

Exit codes: 0 the job succeeded (or the verb did its work), 1 the job failed, 2 a usage or spec
error, 3 a timeout, 4 the cluster is unreachable or Ludus is not installed.
"""

app = typer.Typer(name="ludus", help=HELP, no_args_is_help=True, add_completion=True,
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


def dump(data: Any, output: str) -> None:
    """`data` as JSON or YAML (what -o json|yaml prints for every verb)."""
    if output == "json":
        out.print_json(json.dumps(data, default=str))
    else:
        out.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)


def emit(output: str, data: Callable[[], Any], table: Callable[[], None]) -> None:
    """-o table|json|yaml, the same way for every read verb: `table` prints the human view, `data` is the
    same content for programs."""
    if output in ("json", "yaml"):
        dump(data(), output)
    elif output == "table":
        table()
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

