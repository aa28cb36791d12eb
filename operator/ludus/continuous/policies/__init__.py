"""The rules a ContinuousTraining lives by, one small pure module each, applied in this order by
`continuous.reconcile`: `publication` (a promotion in flight ends with its publish pod), `promotion`
(finished runs decided against the champion, and promotions by hand), `triggers` (the schedule, a
data version, a retrain request), `concurrency` (Forbid, Replace, starting a run) and `history`
(the runs past the history limits). None writes a status or talks to the API server."""
