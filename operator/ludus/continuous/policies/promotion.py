"""Whether a challenger model replaces the champion: the promotion rule of continuous training, and
the pass's two ways to a promotion (a finished run decided in order, a promotion by hand).

The challenger is promoted only if it was evaluated, its objective beats the champion's by at least
`min_improvement` (in the objective's direction), and every threshold holds. A run that started
from the champion in service measured the champion on its own evaluation data before training (its
baseline): it is compared with that, on the same data, not with a score from the champion's own run
on the data of its day. The first evaluated run with no champion is promoted if the thresholds hold.
Every refusal says why, in words a person can act on: this is what the status, the Event and the
metric carry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ludus.api import constants as c
from ludus.api.continuous import Champion, Publishing, RunRecord, Threshold, parse_threshold
from ludus.api.models import Objective
from ludus.continuous.publish import publish_pod, record_pod
from ludus.continuous.state import RunPass
from ludus.trainingjob.objective import gain


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    message: str


# What the challenger is compared with, in a verdict's words.
CHAMPION_SCORE = "the champion's"
BASELINE_SCORE = "the champion's on this run's data (its baseline)"


def decide(challenger: Mapping[str, float] | None, champion: Mapping[str, float] | None, objective: Objective,
           min_improvement: float = 0.0, thresholds: Sequence[Threshold] = (),
           against: str = CHAMPION_SCORE) -> Verdict:
    """Promote `challenger` (its evaluation metrics) over `champion` (None: there is none)? `against` names
    what `champion` holds: the champion's own score, or the champion evaluated on the challenger's data."""
    value = (challenger or {}).get(objective.metric)
    if value is None or not math.isfinite(value):
        reported = ", ".join(sorted(challenger or {})) or "nothing"
        return Verdict(False, c.CT_REASON_NOT_EVALUATED,
                       f"the challenger has no {objective.metric} to compare (it reported {reported})")
    assert challenger is not None
    for threshold in thresholds:
        actual = challenger.get(threshold.metric)
        if actual is None or not math.isfinite(actual):
            return Verdict(False, c.CT_REASON_THRESHOLD, f"{threshold} cannot be checked: the challenger reported no "
                           f"{threshold.metric}")
        if not threshold.holds(actual):
            return Verdict(False, c.CT_REASON_THRESHOLD,
                           f"{threshold} does not hold: {threshold.metric} is {actual:.4g}")
    best = (champion or {}).get(objective.metric)
    if best is None or not math.isfinite(best):
        return Verdict(True, c.CT_REASON_FIRST_CHAMPION, f"the first evaluated run: {objective.metric} {value:.4g}")
    margin = gain(value, best, objective)
    if margin <= 0 or margin < min_improvement:
        wanted = f" by at least {min_improvement:g}" if min_improvement else ""
        return Verdict(False, c.CT_REASON_NOT_BETTER, f"{objective.metric} {value:.4g} against {against} "
                       f"{best:.4g}: not better{wanted} ({objective.goal})")
    return Verdict(True, c.CT_REASON_BETTER, f"{objective.metric} {value:.4g} beats {against} {best:.4g} "
                   f"by {margin:.4g}")


def reference(record: RunRecord, champion: Champion | None, objective: Objective) -> tuple[dict[str, float] | None,
                                                                                             str]:
    """What a finished run is compared with: the champion evaluated on the run's own data before training
    (its baseline), where the run started from the champion in service and measured it; the champion's
    own score otherwise (a run from scratch, or a trainer that reports no baseline)."""
    if champion is None:
        return None, CHAMPION_SCORE
    measured = record.baseline.get(objective.metric)
    if record.warm_start == champion.job and measured is not None and math.isfinite(measured):
        return dict(record.baseline), BASELINE_SCORE
    return dict(champion.evaluation), CHAMPION_SCORE


def decide_ended_runs(s: RunPass) -> None:
    """Runs that ended, in order, against the champion: a failed one is recorded, a succeeded one is
    decided; a promoted one is published before the next is decided (one publication at a time)."""
    thresholds = [parse_threshold(t) for t in s.ct.spec.promotion.thresholds]
    for number in sorted(s.records):
        record = s.records[number]
        if record.promoted is not None or record.reason == c.CT_REASON_PUBLISHING or number not in s.by_number:
            continue
        if record.phase == c.PHASE_FAILED:
            s.records[number] = record.model_copy(update={
                "promoted": False, "reason": c.CT_REASON_RUN_FAILED, "finished_at": s.now,
                "message": "the run failed: its model is not considered (see the TrainingJob's conditions)"})
            s.event("Warning", c.CT_REASON_RUN_FAILED, f"{record.name} failed; the champion stays")
            continue
        if record.phase != c.PHASE_SUCCEEDED or s.publishing is not None:
            continue  # running, or waiting for the promotion before it to be published
        scores, against = reference(record, s.champion, s.objective)
        verdict = decide(record.evaluation, scores, s.objective, s.ct.spec.promotion.min_improvement, thresholds,
                         against)
        if verdict.promote:
            _publish(s, record, verdict.reason, verdict.message)
        else:
            s.rejections += 1
            s.plan.decisions.append(("rejected", verdict.reason))
            s.records[number] = record.model_copy(update={
                "promoted": False, "reason": verdict.reason, "message": verdict.message, "finished_at": s.now})
            s.event("Normal", c.CT_REASON_REJECTED, f"{record.name} is not promoted: {verdict.message}")
            tag = record_pod(s.ct, record.name, number, record.tracking_run_id, verdict.reason, verdict.message)
            if tag is not None:  # created before the status is written: a restart re-decides, the name is fixed
                s.plan.create.append(tag)


def promote_by_hand(s: RunPass) -> None:
    """`ludus promote`: any succeeded run, the rule aside (a rollback); each request is handled once."""
    request = s.ct.metadata.annotations.get(c.ANNOTATION_PROMOTE)
    if not request or request == s.handled_promote or s.publishing is not None:
        return
    s.handled_promote = request
    wanted = request.split("@", 1)[0]
    target = next((r for r in s.records.values() if r.name == wanted), None)
    if target is None or target.phase != c.PHASE_SUCCEEDED:
        why = "no run of that name" if target is None else f"it is {target.phase}, not Succeeded"
        s.event("Warning", c.CT_REASON_PROMOTE_REFUSED, f"cannot promote {wanted}: {why}")
    elif s.champion is not None and s.champion.job == wanted:
        s.event("Normal", c.CT_REASON_PROMOTE_REFUSED, f"{wanted} is already the champion")
    else:
        over = s.champion.job if s.champion else "no champion"
        _publish(s, target, c.CT_REASON_MANUAL, f"promoted by hand (ludus promote) over {over}")


def _publish(s: RunPass, record: RunRecord, reason: str, message: str) -> None:
    """A promotion decided: recorded in the status first (`publishing`), then its publish pod created."""
    s.publishing = Publishing(job=record.name, reason=reason, message=message,
                              evaluation=dict(record.evaluation), started_at=s.now)
    s.records[record.number] = record.model_copy(update={"reason": c.CT_REASON_PUBLISHING, "message": message})
    s.plan.create.append(publish_pod(s.ct, record.name, record.number, record.tracking_run_id, reason))
