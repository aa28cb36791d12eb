"""A trial stopped early, recorded in the experiment tracker (pure).

The trainer stopped by SIGTERM leaves its MLflow run RUNNING, since a suspended job resumes; a trial the
sweep stops never does, and MLflow's comparison views should say so. With spec.template.tracking and the
trial's run known, the stop comes with a short record pod (`ludus_trainer.registry --stopped-early`, the
template's image and tracker credentials) that tags the run with why and ends it KILLED. Its name is fixed
by the trial's number, so a stop planned again after a restart creates nothing new; an ended one is
deleted, a failed one said once in a Warning (the stop itself stands either way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ludus.api import constants as c
from ludus.api.sweep import Sweep, TrialRecord
from ludus.builders.short_pods import ended, recorder_container, short_pod


def record_pod_name(sweep: str, number: int) -> str:
    return f"{sweep}-stopped-{number}"


def tracks(sweep: Sweep) -> bool:
    tracking = sweep.spec.template.tracking
    return tracking is not None and tracking.uri is not None


def stopped_record_pod(sweep: Sweep, trial: TrialRecord, message: str) -> dict[str, Any] | None:
    """The pod that tags the stopped trial's run (None without a tracker or before the trial named its run)."""
    tracking = sweep.spec.template.tracking
    if tracking is None or tracking.uri is None or not trial.tracking_run_id:
        return None
    args = ["--stopped-early", "--tracking-run", trial.tracking_run_id, "--reason", c.SWEEP_REASON_STOPPED_EARLY]
    container = recorder_container(sweep.spec.template, tracking, args, message)
    labels = {c.LABEL_SWEEP: sweep.metadata.name, c.LABEL_RECORD: trial.name}
    return short_pod(c.SWEEP_KIND, sweep.metadata, sweep.spec.template, record_pod_name(sweep.metadata.name,
                     trial.number), labels, container)


def ended_records(sweep: Sweep, pods: Sequence[Mapping[str, Any]]
                  ) -> tuple[list[str], list[tuple[str, str, str]], bool]:
    """Of the sweep's record pods (listed by label, owned by it): the ended ones to delete, a Warning for each
    that failed, and whether one still runs (the sweep looks again)."""
    delete: list[str] = []
    events: list[tuple[str, str, str]] = []
    running = False
    for pod in pods:
        name = str(pod["metadata"]["name"])
        trial = str((pod["metadata"].get("labels") or {}).get(c.LABEL_RECORD, ""))[:63]
        outcome = ended(pod)
        if outcome is None:
            running = True
            continue
        delete.append(name)
        if not outcome.ok:
            why = str(outcome.report.get("error") or outcome.message or "it failed")
            events.append(("Warning", c.SWEEP_REASON_TRACKER_NOT_UPDATED,
                           f"trial {trial}'s run in MLflow was not tagged as stopped early: {why[-300:]}"))
    return delete, events, running
