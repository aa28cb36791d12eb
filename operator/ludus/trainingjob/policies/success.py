"""Success: every worker exited 0; for an elastic job, worker 0 did (torchrun's agents finish together)."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.policies.decision import Finish


def succeeded(job: TrainingJob, workers: dict[int, PodObservation], replacing: frozenset[int]) -> Finish | None:
    if replacing:
        return None
    desired = job.spec.replicas
    if job.spec.elastic is None:
        done = all(workers.get(i) is not None and workers[i].phase == "Succeeded" for i in range(desired))
    else:
        done = workers.get(0) is not None and workers[0].phase == "Succeeded"
    if not done:
        return None
    return Finish(c.PHASE_SUCCEEDED, c.REASON_SUCCEEDED, f"{desired} workers finished training")
