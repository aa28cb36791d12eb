"""status.tracking and the Tracked condition: the job's run in the experiment tracker (pure).

Worker 0's rank 0 reports its run's IDs and whether everything so far reached the tracker, on its metrics
page while it trains and in its termination message at the end. Everything a pod says is checked: the IDs
against MLflow's shapes, the reason against the few the trainer gives; the URL is built from the spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.models import Condition, TrackingStatus, TrainingJob, TrainingJobSpec
from ludus.trainingjob.observe import PodObservation, current_workers
from ludus.trainingjob.progress import ProgressSample

RUN_ID: Final = re.compile(r"[0-9a-f]{32}")
EXPERIMENT_ID: Final = re.compile(r"[0-9]{1,19}")
_MAX_PENDING: Final = 2**31


@dataclass(frozen=True)
class TrackingReport:
    """What worker 0 said of its run, checked."""

    run_id: str | None
    experiment_id: str | None
    ok: bool
    reason: str
    pending: int = 0


def checked_report(run_id: object, experiment_id: object, ok: object, reason: object,
                   pending: object = 0) -> TrackingReport:
    """A report from a pod, hostile until checked: IDs of the wrong shape are dropped, an unknown reason for a
    failure becomes the generic one."""
    good_ids = isinstance(run_id, str) and RUN_ID.fullmatch(run_id) and isinstance(experiment_id, str) \
        and EXPERIMENT_ID.fullmatch(experiment_id)
    healthy = ok is True
    why = c.REASON_TRACKED if healthy else (reason if reason in c.TRACKING_FAILURE_REASONS
                                            else c.TRACKING_FAILURE_REASONS[0])
    count = pending if isinstance(pending, int) and not isinstance(pending, bool) and 0 <= pending < _MAX_PENDING \
        else 0
    return TrackingReport(str(run_id) if good_ids else None, str(experiment_id) if good_ids else None,
                          healthy, why, count)


def from_termination_message(pods: list[PodObservation]) -> TrackingReport | None:
    """Worker 0's last word on its run (written after the final flush, so it says whether the run is complete)."""
    worker0 = current_workers(pods).get(0)
    raw: Any = (worker0.evaluation or {}).get("tracking") if worker0 is not None and worker0.finished else None
    if not isinstance(raw, dict):
        return None
    return checked_report(raw.get("runId"), raw.get("experimentId"), raw.get("ok"), raw.get("reason"),
                          raw.get("pending", 0))


def with_default_tracker(spec: TrainingJobSpec, default_uri: str) -> TrainingJobSpec:
    """A spec.tracking that names no server gets the operator's default (unchanged without one)."""
    if spec.tracking is None or spec.tracking.uri is not None or not default_uri:
        return spec
    return spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"uri": default_uri})})


def job_with_default_tracker(job: TrainingJob, default_uri: str) -> TrainingJob:
    spec = with_default_tracker(job.spec, default_uri)
    return job if spec is job.spec else job.model_copy(update={"spec": spec})


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def latest_report(progress: ProgressSample | None, pods: list[PodObservation]) -> TrackingReport | None:
    """Worker 0's termination message once it has ended, else its metrics page."""
    final = from_termination_message(pods)
    if final is not None:
        return final
    if progress is None or progress.tracking is None:
        return None
    return checked_report(*progress.tracking)


def tracking_status(job: TrainingJob, report: TrackingReport | None) -> TrackingStatus | None:
    """status.tracking: the run once worker 0 has named one (kept when a later report names none)."""
    current = job.status.tracking
    tracking = job.spec.tracking
    if tracking is None or tracking.uri is None or report is None or report.run_id is None \
            or report.experiment_id is None:
        return current
    found = TrackingStatus(run_id=report.run_id, experiment_id=report.experiment_id,
                           url=run_url(tracking.uri, report.experiment_id, report.run_id))
    return current if found == current else found


def tracked_condition(conditions: list[Condition], job: TrainingJob, report: TrackingReport | None,
                      now: datetime) -> list[Condition]:
    """Tracked: True while everything reached the tracker; False with why (the run goes on either way)."""
    tracking = job.spec.tracking
    if tracking is None:
        return conditions
    if tracking.uri is None:
        return upsert_condition(conditions, c.COND_TRACKED, "False", c.REASON_NO_TRACKER,
                                "spec.tracking names no uri and the operator has no default tracking server (its "
                                "--tracking-uri, the chart's tracking.uri): nothing is recorded", now)
    if report is None:
        return conditions
    if report.ok:
        message = f"the run is in {tracking.uri.rstrip('/')}"
        return upsert_condition(conditions, c.COND_TRACKED, "True", c.REASON_TRACKED, message, now)
    what = "refused the trainer's credentials" if report.reason == "TrackerRefused" else "could not be reached"
    message = (f"the experiment tracker at {tracking.uri.rstrip('/')} {what}; the trainer keeps what it could "
               "not send and retries (training goes on)")
    return upsert_condition(conditions, c.COND_TRACKED, "False", report.reason, message, now)
