"""Fluent builders for TrainingJobs and pod observations, shared by every test tier.

    make_job("a").workers(4).gpus(8).build()        -> a TrainingJob model
    make_job("a").workers(2).manifest()              -> the dict a user would apply
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.trainingjob.observe import PodObservation

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class JobBuilder:
    def __init__(self, name: str, namespace: str = "team-a") -> None:
        self._body: dict[str, Any] = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": "100",
                "creationTimestamp": T0.isoformat(),
            },
            "spec": {"image": "ludus-trainer:test", "command": ["python", "-m", "ludus_trainer"]},
        }

    def _spec(self, **values: Any) -> JobBuilder:
        self._body["spec"].update(values)
        return self

    def workers(self, n: int) -> JobBuilder:
        return self._spec(replicas=n)

    def gpus(self, n: int) -> JobBuilder:
        self._body["spec"].setdefault("resources", {})["gpus"] = n
        return self

    def nproc(self, value: int | str) -> JobBuilder:
        return self._spec(nprocPerNode=value)

    def elastic(self, lo: int, hi: int, max_restarts: int = 3) -> JobBuilder:
        return self._spec(elastic={"minReplicas": lo, "maxReplicas": hi, "maxRestarts": max_restarts})

    def policy(self, restart: str, *, backoff: int | None = None, retryable: list[int] | None = None) -> JobBuilder:
        self._spec(restartPolicy=restart)
        if backoff is not None:
            self._spec(backoffLimit=backoff)
        if retryable is not None:
            self._spec(retryableExitCodes=retryable)
        return self

    def clean(self, policy: str) -> JobBuilder:
        return self._spec(cleanPodPolicy=policy)

    def on_fake_nodes(self, gpu: bool | None = None) -> JobBuilder:
        """Place the pods on the built-in cluster's kwok nodes (they carry a NoSchedule taint)."""
        template = self._body["spec"].setdefault("template", {})
        template["tolerations"] = [{"key": "ludus.dev/fake-node", "operator": "Exists", "effect": "NoSchedule"}]
        template["nodeSelector"] = {"ludus.dev/node-kind": "fake"}
        return self

    def spec(self, **values: Any) -> JobBuilder:
        return self._spec(**values)

    def status(self, **values: Any) -> JobBuilder:
        self._body.setdefault("status", {}).update(values)
        return self

    def manifest(self) -> dict[str, Any]:
        body = copy.deepcopy(self._body)
        body["metadata"] = {"name": body["metadata"]["name"]}
        body.pop("status", None)
        return body

    def body(self) -> dict[str, Any]:
        return copy.deepcopy(self._body)

    def build(self) -> TrainingJob:
        return TrainingJob.model_validate(self.body())


def make_job(name: str = "digits", namespace: str = "team-a") -> JobBuilder:
    return JobBuilder(name, namespace)


def pod(
    job: str,
    index: int | None,
    phase: str = "Running",
    *,
    ready: bool | None = None,
    role: str = c.ROLE_WORKER,
    uid: str | None = None,
    exit_code: int | None = None,
    deleting: bool = False,
    reason: str = "",
    disruption: str = "",
    age: int = 0,
    owner: str = "uid-digits",
) -> PodObservation:
    """A pod observation; Running pods are ready unless told otherwise."""
    name = f"{job}-worker-{index}" if role == c.ROLE_WORKER else f"{job}-rdzv"
    return PodObservation(
        name=name,
        uid=uid or f"{name}-uid",
        role=role,
        index=index,
        phase=phase,
        ready=(phase == "Running") if ready is None else ready,
        deleting=deleting,
        exit_code=exit_code,
        reason=reason,
        disruption=disruption,
        created_at=T0 + timedelta(seconds=age),
        owner_uid=owner,
    )


def store(job: str, ready: bool = True) -> PodObservation:
    return pod(job, None, "Running", role=c.ROLE_RENDEZVOUS, ready=ready)


def running(job: str, n: int) -> list[PodObservation]:
    """n running workers plus a ready rendezvous store."""
    return [store(job)] + [pod(job, i) for i in range(n)]
