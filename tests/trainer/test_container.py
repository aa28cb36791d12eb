"""The same two-agent run inside two containers of the built image on a Docker network."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from devcluster.agents import result
from devcluster.docker_env import docker_problem
from ludus.frameworks import torch as torch_wiring
from tests.factories import make_job

IMAGE = "ludus-trainer:latest"
pytestmark = [pytest.mark.docker, pytest.mark.skipif(docker_problem() is not None, reason=str(docker_problem()))]


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], text=True, capture_output=True, check=check, timeout=600)


def test_two_agent_containers_train_digits_over_a_docker_network() -> None:
    tag = uuid.uuid4().hex[:6]
    network, store = f"ludus-{tag}", f"rdzv-{tag}"
    agents = [f"worker-{tag}-{i}" for i in range(2)]
    job = make_job("ctr").workers(2).nproc(2).build()
    env = {e["name"]: e["value"] for e in torch_wiring.torchrun_env(job, 0)}
    env.pop("PET_NODE_RANK")  # ranks come from the rendezvous
    env["PET_RDZV_ENDPOINT"] = f"{store}:29400"
    _docker("network", "create", network)
    try:
        _docker("run", "-d", "--name", store, "--hostname", store, "--network", network, IMAGE,
                *torch_wiring.store_command())
        for name in agents:
            flags = [f"-e{k}={v}" for k, v in env.items()]
            _docker("run", "-d", "--name", name, "--hostname", name, "--network", network, "--shm-size=256m",
                    "-e", "LUDUS_CHECKPOINT_DIR=/tmp/ckpt", *flags, IMAGE,
                    *torch_wiring.TORCHRUN, "python", "-m", "ludus_trainer", "--workload", "digits", "--epochs", "30")
        codes = [_docker("wait", name).stdout.strip() for name in agents]
        logs = "".join(_docker("logs", name).stdout + _docker("logs", name).stderr for name in agents)
        assert codes == ["0", "0"], logs[-3000:]
        final = result(logs)
        assert final is not None and final["world_size"] == 4 and final["accuracy"] >= 0.95, logs[-2000:]
    finally:
        _docker("rm", "-f", store, *agents, check=False)
        _docker("network", "rm", network, check=False)
