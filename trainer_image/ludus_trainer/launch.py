"""`python -m ludus_trainer.launch [harness args]`: torchrun's agent with the harness forked from it.

torchrun (`--no-python`) starts every worker as a fresh interpreter that imports torch again: with
four workers on two CPUs that is most of the time from a pod's start to the first step. This
launcher is torchrun itself (its own argument parser, PET_* variables and elastic agent), with the
harness as a Python entry point started by `fork`: the workers inherit the torch the agent has
already imported. The operator uses it for the built-in harness (`python -m ludus_trainer ...`);
any other command still runs under plain torchrun.
"""

from __future__ import annotations

import sys


def _harness(argv: list[str]) -> int:
    from ludus_trainer.cli import main

    return main(argv)


def main(argv: list[str] | None = None) -> int:
    import torch.distributed  # noqa: F401 - imported once here, inherited by every forked worker
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    args = list(sys.argv[1:] if argv is None else argv)
    # torchrun's parser (it reads PET_* as defaults); the script name is a placeholder for our entry.
    parsed = parse_args(["--no-python", "ludus_trainer", *args])  # type: ignore[no-untyped-call]
    config, _, _ = config_from_args(parsed)
    config.start_method = "fork"
    elastic_launch(config, _harness)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
