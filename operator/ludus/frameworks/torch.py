"""Everything about torchrun's wiring lives here, and nothing else says PET_.

torchrun reads its flags from PET_* environment variables, so the operator
configures it without rewriting the user's command. The rendezvous store runs
in its own small pod (not in worker 0): c10d's TCPStore dies with the process
that hosts it, and a store inside worker 0 would take every other worker down
with it. A separate store pod outlives any single worker.
"""

from __future__ import annotations

from typing import Final

from ludus.api import constants as c
from ludus.api import names
from ludus.api.models import TrainingJob

TORCHRUN: Final = ("torchrun", "--no-python")
DEFAULT_COMMAND: Final = ("python", "-m", "ludus_trainer")
HARNESS: Final = "ludus_trainer"
LAUNCHER: Final = "ludus_trainer.launch"
PYTHONS: Final = frozenset({"python", "python3"})

# How long an agent waits for the group to form before giving up.
RDZV_JOIN_TIMEOUT_SECONDS: Final = 900
# Once the minimum has joined, how long to wait for more before starting (torch's default is 30 s):
# a re-formed group after a lost worker trains again this much sooner.
RDZV_LAST_CALL_SECONDS: Final = 5


def store_program(port: int = c.RENDEZVOUS_PORT) -> str:
    """A TCPStore server that any PyTorch image can run; c10d agents connect to it as clients."""
    return (
        "import signal, torch.distributed as d\n"
        f"store = d.TCPStore('0.0.0.0', {port}, is_master=True, wait_for_workers=False)\n"
        "print('ludus rendezvous store listening', flush=True)\n"
        "signal.signal(signal.SIGTERM, lambda *_: exit(0))\n"
        "signal.pause()\n"
    )


def nproc_per_node(job: TrainingJob) -> int:
    """`auto` means one process per GPU, or one on the CPU (torchrun's own auto would use every CPU core)."""
    value = job.spec.nproc_per_node
    if value == "auto":
        return max(job.spec.resources.gpus, 1)
    return int(value)


def is_static(job: TrainingJob) -> bool:
    """A job without an elastic range has fixed ranks, so workers can be told their node rank."""
    return job.spec.min_replicas == job.spec.max_replicas


def rendezvous_endpoint(job: TrainingJob) -> str:
    return f"{names.pod_fqdn(job, names.rendezvous_pod_name(job))}:{c.RENDEZVOUS_PORT}"


def torchrun_env(job: TrainingJob, index: int) -> list[dict[str, str]]:
    """The PET_* variables for worker `index`, in a stable order."""
    max_restarts = job.spec.elastic.max_restarts if job.spec.elastic else 3
    env = [
        {"name": "PET_NNODES", "value": f"{job.spec.min_replicas}:{job.spec.max_replicas}"},
        {"name": "PET_NPROC_PER_NODE", "value": str(nproc_per_node(job))},
        {"name": "PET_RDZV_BACKEND", "value": "c10d"},
        {"name": "PET_RDZV_ENDPOINT", "value": rendezvous_endpoint(job)},
        {"name": "PET_RDZV_ID", "value": job.metadata.uid},
        {
            "name": "PET_RDZV_CONF",
            "value": f"join_timeout={RDZV_JOIN_TIMEOUT_SECONDS},last_call_timeout={RDZV_LAST_CALL_SECONDS}",
        },
        {"name": "PET_MAX_RESTARTS", "value": str(max_restarts)},
    ]
    if is_static(job):
        env.append({"name": "PET_NODE_RANK", "value": str(index)})
    # torch 2.13's c10d rendezvous caches rank 0's bootstrap store between rounds and never
    # republishes MASTER_ADDR for the next round, so an agent joining later (scale-up, a replaced
    # pod) waits forever. Building the bootstrap store anew each round avoids it.
    env.append({"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"})
    return env


def worker_command(job: TrainingJob) -> list[str]:
    """torchrun in front of the user's command; `--no-python` runs it as given. The built-in harness
    (`python -m ludus_trainer ...`) gets its own launcher: torchrun's agent, forking the workers
    from a process that has already imported torch (seconds less to the first step)."""
    command = list(job.spec.command or DEFAULT_COMMAND)
    if len(command) >= 3 and command[0] in PYTHONS and command[1:3] == ["-m", HARNESS]:
        return [command[0], "-m", LAUNCHER, *command[3:]]
    return [*TORCHRUN, *command]


def store_command() -> list[str]:
    return ["python3", "-c", store_program()]
