"""The rules a TrainingJob lives by, one small pure module each.

Each policy reads the job and what was observed and returns a decision value
(`ludus.trainingjob.policies.decision`); none writes a status or talks to the API server.
`ludus.trainingjob.reconcile.reconcile` applies them in order and `ludus.trainingjob.status.compute_status`
turns the result into the status.
"""
