"""History limits: the newest finished runs are kept (successful and failed ones by their own limits);
the champion's run and the one being published are kept always."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.continuous.state import RunPass
from ludus.trainingjob.child import phase_of


def expired_runs(s: RunPass) -> list[str]:
    """The names of the decided runs past the history limits, newest kept."""
    spec = s.ct.spec
    keep = {s.champion.job if s.champion else None, s.publishing.job if s.publishing else None}
    expired: list[str] = []
    for phase, limit in ((c.PHASE_SUCCEEDED, spec.successful_runs_history_limit),
                         (c.PHASE_FAILED, spec.failed_runs_history_limit)):
        finished = sorted((n for n, j in s.by_number.items() if phase_of(j) == phase
                           and s.records[n].promoted is not None and s.records[n].name not in keep), reverse=True)
        expired.extend(s.records[n].name for n in finished[limit:])
    return expired
