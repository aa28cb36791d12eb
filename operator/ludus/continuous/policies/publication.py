"""A promotion in flight ends with its publish pod: the run becomes the champion (the old one retired),
or it is rejected with the pod's own words. Until the pod has ended, nothing else is published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.continuous import Champion, ChampionHistory, Publishing
from ludus.continuous.publish import publish_pod, publish_pod_name, published, record_pod_name
from ludus.continuous.runs import champion_location, model_location, store_uri
from ludus.continuous.state import RunPass


def clear_records(s: RunPass, pods: Sequence[Mapping[str, Any]]) -> None:
    """Record pods (a rejected run's version tagged in MLflow) are deleted once ended; a failed one is said
    once, in a Warning (the rejection itself stands either way)."""
    for number, record in s.records.items():
        name = record_pod_name(s.ct.metadata.name, number)
        pod = next((p for p in pods if p["metadata"]["name"] == name), None)
        outcome = published(pod) if pod is not None else None
        if outcome is None:
            s.plan.recording = s.plan.recording or pod is not None
            continue
        s.plan.delete_pods.append(name)
        if not outcome.ok:
            s.event("Warning", c.CT_REASON_REGISTRY_NOT_UPDATED,
                    f"{record.name}'s version in MLflow was not tagged as rejected: {outcome.message[-300:]}")


def finish_publication(s: RunPass, pods: Sequence[Mapping[str, Any]]) -> None:
    """Create the publication's pod if it is missing (a restart between the decision and the pod), and
    apply its outcome once it has one."""
    publishing = s.publishing
    if publishing is None:
        return
    number = next((n for n, r in s.records.items() if r.name == publishing.job), None)
    if number is None:
        s.event("Warning", c.CT_REASON_PUBLISH_FAILED, f"{publishing.job} has no run record: not published")
        s.publishing = None
        return
    pod_name = publish_pod_name(s.ct.metadata.name, number)
    pod = next((p for p in pods if p["metadata"]["name"] == pod_name), None)
    if pod is None:
        s.plan.create.append(publish_pod(s.ct, publishing.job, number, s.records[number].tracking_run_id,
                                         publishing.reason))
        return
    outcome = published(pod)
    if outcome is None:
        return  # still publishing
    s.plan.delete_pods.append(pod_name)
    if outcome.ok:
        _crown(s, publishing, number, outcome.sha256, outcome.registry)
    else:
        _refuse(s, publishing, number, outcome.message, outcome.reason or c.CT_REASON_PUBLISH_FAILED)
    s.publishing = None


def _crown(s: RunPass, publishing: Publishing, number: int, sha256: str | None, registry: str = "") -> None:
    """The published run is the champion from now on; the one before it is retired in the history."""
    ct, now = s.ct, s.now
    if s.champion is not None and s.champions and s.champions[-1].retired_at is None:
        s.champions[-1] = s.champions[-1].model_copy(update={"retired_at": now})
    s.champion = Champion(job=publishing.job, claim_name=ct.spec.template.checkpoint.claim_name or "",
                          model_path=champion_location(ct), source_path=model_location(ct, publishing.job),
                          evaluation=dict(publishing.evaluation),
                          promoted_at=now, reason=publishing.reason, sha256=sha256 or None)
    s.champions.append(ChampionHistory(job=publishing.job, promoted_at=now, reason=publishing.reason))
    if any(x.type == c.CT_COND_MODEL_EXPORTED and x.status == "False" for x in s.conditions):
        s.conditions = upsert_condition(s.conditions, c.CT_COND_MODEL_EXPORTED, "True", c.CT_REASON_MODEL_PUBLISHED,
                                        f"{publishing.job}'s exported model was published", now)
    s.promotions += 1
    s.plan.decisions.append(("promoted", publishing.reason))
    where = (f"{champion_location(ct)} now points at {model_location(ct, publishing.job)}" if store_uri(ct) else
             f"{champion_location(ct)} on claim {ct.spec.template.checkpoint.claim_name} now holds its model")
    s.event("Normal", c.CT_REASON_PROMOTED, f"{publishing.job} is the champion ({publishing.reason}: "
            f"{publishing.message}); {where}" + (f"; {registry}" if registry else ""))
    record = s.records[number]
    s.records[number] = record.model_copy(update={
        "promoted": True, "reason": publishing.reason, "message": publishing.message,
        "finished_at": record.finished_at or now})


def _refuse(s: RunPass, publishing: Publishing, number: int, why: str, reason: str) -> None:
    s.rejections += 1
    s.plan.decisions.append(("rejected", reason))
    message = f"{publishing.job} was not published: {why}"
    if reason == c.CT_REASON_NO_EXPORT:
        # Not a failure of this run alone: a script that never exports can never be promoted. Say so.
        message = (f"{publishing.job} exported no model, so no run of it can be promoted: its script must call "
                   "ludus_trainer.api.export_model(model) when it ends (the built-in workloads do)")
        s.conditions = upsert_condition(s.conditions, c.CT_COND_MODEL_EXPORTED, "False", reason, message, s.now)
    s.event("Warning", reason, message)
    record = s.records[number]
    s.records[number] = record.model_copy(update={
        "promoted": False, "reason": reason, "message": message[:1000],
        "finished_at": record.finished_at or s.now})
