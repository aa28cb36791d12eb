"""The rules a TrainingJob lives by, one small pure module each.

Each policy reads the job and what was observed and returns a decision value
(`ludus.policies.decision`); none writes a status or talks to the API server.
`ludus.plan.reconcile` applies them in order and `ludus.status.compute_status`
turns the result into the status.
"""
