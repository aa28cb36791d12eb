"""Record the operator's verdicts on runs in MLflow, from the operator's short record pods (the trainer image;
the operator never talks to the tracker itself):

- a ContinuousTraining's rejected run: its version of the registered model tagged with why
  (`--registered-model`: `ludus.promoted=false`, `ludus.reason`, `ludus.message`);
- a Sweep's trial stopped early: its run tagged (`--stopped-early`: `ludus.stopped_early=true`,
  `ludus.stop_reason`, `ludus.stop_message`) and ended KILLED.

Exit 0 with `{"registryVersion": ...}`, `{"stoppedRun": ...}` or `{"message": ...}` (the run registered no
version) in the termination message, 1 with `{"error"}`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ludus_trainer.env import ENV_TRACKING_URI
from ludus_trainer.publish import write_report


def _record(args: argparse.Namespace) -> dict[str, Any]:
    from ludus_trainer.tracking import client_for, mark_stopped_early, reject_version

    client = client_for(os.environ[ENV_TRACKING_URI])
    if args.stopped_early:
        mark_stopped_early(client, args.tracking_run, args.reason, args.message)
        return {"stoppedRun": args.tracking_run}
    version = reject_version(client, args.registered_model, args.tracking_run, args.reason, args.message)
    return {"registryVersion": version} if version else {"message": "the run registered no version"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ludus_trainer.registry", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--registered-model", help="Tag the run's version of this registered model as rejected.")
    what.add_argument("--stopped-early", action="store_true", help="Tag the run as stopped early and end it.")
    parser.add_argument("--tracking-run", required=True, help="The MLflow run ID.")
    parser.add_argument("--reason", required=True)
    parser.add_argument("--message", default="")
    args = parser.parse_args(argv)
    try:
        report, code = _record(args), 0
    except Exception as err:  # noqa: BLE001 - whatever the tracker says, the pod reports it and ends
        report, code = {"error": str(err)[:500]}, 1
    write_report(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
