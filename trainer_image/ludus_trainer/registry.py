"""Record a ContinuousTraining's rejection in MLflow's model registry: the rejected run's version of the
registered model is tagged with why (`ludus.promoted=false`, `ludus.reason`, `ludus.message`).

Run by the operator's short record pod (the trainer image) when a run is not promoted and the template
tracks to MLflow; the operator never talks to the tracker itself. Exit 0 with `{"registryVersion": ...}`
(or `{"message": ...}` when the run registered no version) in the termination message, 1 with `{"error"}`.
"""

from __future__ import annotations

import argparse
import os
import sys

from ludus_trainer.env import ENV_TRACKING_URI
from ludus_trainer.publish import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ludus_trainer.registry", description=__doc__.splitlines()[0])
    parser.add_argument("--registered-model", required=True)
    parser.add_argument("--tracking-run", required=True, help="The rejected run's MLflow run ID.")
    parser.add_argument("--reason", required=True)
    parser.add_argument("--message", default="")
    args = parser.parse_args(argv)
    from ludus_trainer.tracking import client_for, reject_version

    try:
        version = reject_version(client_for(os.environ[ENV_TRACKING_URI]), args.registered_model,
                                 args.tracking_run, args.reason, args.message)
        report = {"registryVersion": version} if version else {"message": "the run registered no version"}
        code = 0
    except Exception as err:  # noqa: BLE001 - whatever the tracker says, the pod reports it and ends
        report, code = {"error": str(err)[:500]}, 1
    write_report(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
