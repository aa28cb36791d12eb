"""`ludus`: TrainingJobs from a terminal (also `kubectl ludus`, as a kubectl plugin).

Exit codes: 0 the job succeeded (or the verb did its work), 1 the job failed, 2 a usage or spec
error, 3 a timeout, 4 the cluster is unreachable or Ludus is not installed.
"""

from __future__ import annotations

import sys

import typer

from ludus.sdk.cli import common
from ludus.sdk.cli.common import app
from ludus.sdk.errors import EXIT_OK, EXIT_USAGE, LudusError

# Importing a resource's module registers its commands; their order is the order of `ludus --help`.
# isort: off
from ludus.sdk.cli import trainingjob, sweep, continuous  # noqa: E402
# isort: on

__all__ = ["app", "common", "continuous", "kubectl_complete", "main", "sweep", "trainingjob"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; LudusErrors become their message and exit code, never a stack trace."""
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of exiting.
        result = app(args=argv, prog_name="ludus", standalone_mode=False)
    except LudusError as error:
        common.err.print(f"error: {error}", markup=False, highlight=False)
        return error.exit_code
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except typer.Abort as error:
        common.err.print(f"error: {error or 'aborted'}", markup=False, highlight=False)
        return EXIT_USAGE
    except typer.TyperException as error:  # usage errors: an unknown option, a missing argument
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            common.err.print(f"error: {error}", markup=False, highlight=False)
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

