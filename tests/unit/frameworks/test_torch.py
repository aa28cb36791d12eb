from __future__ import annotations

import pytest

from ludus.frameworks import torch
from tests.factories import make_job


@pytest.mark.parametrize(
    ("gpus", "nproc", "expected"),
    [(0, "auto", 1), (4, "auto", 4), (4, 2, 2), (0, 3, 3)],
    ids=[
        "auto on the CPU is one process",
        "auto with GPUs is one process per GPU",
        "an explicit count wins over the GPU count",
        "an explicit count on the CPU is kept",
    ],
)
def test_nproc_per_node(gpus: int, nproc: int | str, expected: int) -> None:
    assert torch.nproc_per_node(make_job().gpus(gpus).nproc(nproc).build()) == expected


def test_the_harness_runs_under_its_own_launcher_and_any_other_command_under_torchrun() -> None:
    job = make_job().spec(command=[]).build()
    assert torch.worker_command(job) == ["python", "-m", "ludus_trainer.launch"]
    harness = make_job().spec(command=["python3", "-m", "ludus_trainer", "--workload", "gpt"]).build()
    assert torch.worker_command(harness) == ["python3", "-m", "ludus_trainer.launch", "--workload", "gpt"]
    for other in (["python", "train.py"], ["python", "-m", "ludus_trainer_fork"], ["bash", "-c", "x"]):
        job = make_job().spec(command=other).build()
        assert torch.worker_command(job) == ["torchrun", "--no-python", *other]


def test_rendezvous_endpoint_is_the_store_pod_not_worker_zero() -> None:
    endpoint = torch.rendezvous_endpoint(make_job().build())
    assert endpoint == "digits-rdzv.digits.team-a.svc:29400"
    assert "worker-0" not in endpoint


def test_max_restarts_defaults_for_fixed_jobs_and_follows_elastic() -> None:
    fixed = dict((e["name"], e["value"]) for e in torch.torchrun_env(make_job().build(), 0))
    elastic_job = make_job().workers(2).elastic(1, 2, 7).build()
    elastic = dict((e["name"], e["value"]) for e in torch.torchrun_env(elastic_job, 0))
    assert fixed["PET_MAX_RESTARTS"] == "3" and elastic["PET_MAX_RESTARTS"] == "7"
