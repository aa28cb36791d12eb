"""Where a job's starting model comes from (pure): `spec.init` resolved to a claim and a path, or to a URI
in object storage.

`init.fromJob` names another TrainingJob: its model is `<its checkpoint directory>/<init.path>` on
its checkpoint claim, or `<its checkpoint.uri>/<init.path>` in object storage, once it has succeeded.
The resolution is pinned in `status.initializedFrom` the first time, so a restarted worker loads the same
model even after the other job is gone; what the trainer then actually loaded (file, step, SHA-256) is
added from its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ludus.api import constants as c
from ludus.api.models import Init, InitializedFrom, TrainingJob
from ludus.trainingjob.observe import PodObservation, current_workers


@dataclass(frozen=True)
class InitOutcome:
    """The job as its pods are built (spec.init on a claim), what to pin, or why it cannot start."""

    job: TrainingJob
    pinned: InitializedFrom | None = None
    waiting: str | None = None  # the source is not there or not finished yet: the job waits
    unusable: str | None = None  # the source will never have a model: the job fails


def _with_init(job: TrainingJob, init: Init, pinned: InitializedFrom) -> TrainingJob:
    """The job with fromJob replaced by where the pin says the model is (a claim and path, or a URI)."""
    if pinned.uri:
        resolved = init.model_copy(update={"uri": pinned.uri, "from_job": None})
    else:
        resolved = init.model_copy(update={"claim_name": pinned.claim_name, "path": pinned.path, "from_job": None})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"init": resolved})})


def resolve_init(job: TrainingJob, source: Mapping[str, Any] | None) -> InitOutcome:
    """`source`: the body of the TrainingJob `spec.init.fromJob` names (None: not found)."""
    init = job.spec.init
    if init is None:
        return InitOutcome(job)
    old = job.status.initialized_from
    if init.uri is not None:
        pinned = InitializedFrom(uri=init.uri.rstrip("/"))
        return InitOutcome(job, old if old is not None and old.uri == pinned.uri and not old.job else pinned)
    if init.claim_name is not None:
        pinned = InitializedFrom(claim_name=init.claim_name, path=init.path)
        if old is not None and old.claim_name == init.claim_name and old.path == init.path:
            pinned = old
        return InitOutcome(job, pinned)
    name = init.from_job
    assert name is not None, "the model requires claimName or fromJob"
    if old is not None and old.job == name and (old.uri or old.claim_name):  # pinned when the workers were created
        return InitOutcome(_with_init(job, init, old), old)
    field = f"spec.init.fromJob ({name})"
    if source is None:
        return InitOutcome(job, waiting=f"{field}: no TrainingJob {name} in {job.metadata.namespace}: create it "
                           "(or correct the name); this job starts once it has succeeded")
    spec = source.get("spec") or {}
    checkpoint = spec.get("checkpoint") or {}
    claim, uri = checkpoint.get("claimName"), checkpoint.get("uri")
    phase = (source.get("status") or {}).get("phase") or c.PHASE_PENDING
    if not claim and not uri:
        return InitOutcome(job, unusable=f"{field}: {name} has neither spec.checkpoint.claimName nor uri, so its "
                           "model stayed in its pods: train it with a checkpoint claim or object storage, or use "
                           "init.claimName or init.uri")
    if uri and not job.spec.checkpoint.uri:
        return InitOutcome(job, unusable=f"{field}: {name}'s model is in object storage ({str(uri)[:200]}), read "
                           "with this job's checkpoint store: set spec.checkpoint.uri (and its secretRef)")
    if phase == c.PHASE_FAILED:
        return InitOutcome(job, unusable=f"{field}: {name} failed, so it exported no model: point fromJob at a "
                           "job that succeeded")
    if phase != c.PHASE_SUCCEEDED:
        return InitOutcome(job, waiting=f"{field}: {name} is {phase}; its model is exported when it succeeds, "
                           "and this job waits for it")
    if uri:
        pinned = InitializedFrom(job=name, uri=f"{str(uri).rstrip('/')}/{init.path}")
        return InitOutcome(_with_init(job, init, pinned), pinned)
    sub_path = checkpoint.get("subPath")
    path = f"{sub_path}/{init.path}" if sub_path else init.path
    pinned = InitializedFrom(job=name, claim_name=str(claim), path=path)
    return InitOutcome(_with_init(job, init, pinned), pinned)


InitReport = tuple[str, int | None, str, tuple[str, ...]]  # (file, step, SHA-256, re-initialised) as loaded


def init_report(progress: InitReport | None, pods: list[PodObservation]) -> InitReport | None:
    """What the trainer says it loaded: from its metrics while it runs, else from worker 0's
    termination message (a run shorter than the progress polls)."""
    if progress is not None:
        return progress
    worker0 = current_workers(pods).get(0)
    raw = (worker0.evaluation or {}).get("init") if worker0 is not None else None
    if not isinstance(raw, Mapping) or not raw.get("source"):
        return None
    step = raw.get("step")
    fresh = raw.get("reinitialized")
    reinitialized = tuple(str(x) for x in fresh[:64]) if isinstance(fresh, list) else ()
    return (str(raw["source"])[:1024], step if isinstance(step, int) and not isinstance(step, bool) else None,
            str(raw.get("sha256") or "")[:64], reinitialized)


def loaded(pinned: InitializedFrom | None, report: InitReport | None) -> InitializedFrom | None:
    """The pin, with what the trainer reports it loaded (file, step, SHA-256) once it has."""
    if pinned is None or report is None:
        return pinned
    file, step, sha256, reinitialized = report
    return pinned.model_copy(update={"file": file, "step": step, "sha256": sha256 or None,
                                     "reinitialized": list(reinitialized)})


def pinned_model(current: InitializedFrom | None, outcome: InitOutcome | None, progress: InitReport | None,
                 pods: list[PodObservation]) -> InitializedFrom | None:
    """What `status.initializedFrom` holds after this pass: the resolved pin with what the trainer reports it
    loaded; the trainer's report survives a poll that lacks it (a restarted pod). Without a resolution
    (`outcome` None) the status keeps what it has."""
    if outcome is None:
        return current
    pinned = loaded(outcome.pinned, init_report(progress, pods))
    if pinned is not None and current is not None and not pinned.sha256 and current.sha256:
        return current
    return pinned
