"""The operator's own Prometheus metrics (prefix `ludus_`).

Labels stay bounded: namespaces, phases, verbs and codes, never job names.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram, Info

from ludus import __version__

# Which release runs (a rollout, a rollback, two replicas on different versions): Prometheus' build-info shape.
BUILD_INFO: Final = Info("ludus_build", "The operator's release")
BUILD_INFO.info({"version": __version__})

JOBS_CREATED: Final = Counter("ludus_jobs_created_total", "TrainingJobs the operator started", ["namespace"])
JOBS_SUCCEEDED: Final = Counter("ludus_jobs_succeeded_total", "TrainingJobs that succeeded", ["namespace"])
JOBS_FAILED: Final = Counter("ludus_jobs_failed_total", "TrainingJobs that failed", ["namespace", "reason"])
JOBS_RESTARTED: Final = Counter(
    "ludus_job_restarts_total", "Worker recreations counted against backoffLimit", ["namespace", "reason"]
)
JOBS_BY_PHASE: Final = Gauge("ludus_jobs", "TrainingJobs known to the operator, by phase", ["phase"])
PODS_CREATED: Final = Counter("ludus_pods_created_total", "Pods the operator created", ["role"])
PODS_DELETED: Final = Counter("ludus_pods_deleted_total", "Pods the operator deleted", ["reason"])
RECONCILE_SECONDS: Final = Histogram(
    "ludus_reconcile_duration_seconds",
    "Time of one reconcile pass, API calls included",
    ["handler"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS: Final = Counter("ludus_reconcile_errors_total", "Reconcile passes that raised", ["kind"])
RECONCILE_RETRIES: Final = Counter(
    "ludus_reconcile_retries_total", "Reconcile passes queued again after a conflict or an error", ["reason"]
)
TIME_TO_RUNNING: Final = Histogram(
    "ludus_job_time_to_running_seconds",
    "Time from a TrainingJob's creation to all of its workers running",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
API_REQUESTS: Final = Counter(
    "ludus_api_requests_total", "Requests the reconcile made to the API server", ["verb", "code"]
)
CREDENTIAL_REFRESHES: Final = Counter(
    "ludus_credential_refreshes_total", "Times the operator logged in again (a 401, or credentials about to expire)"
)
QUEUE_DEPTH: Final = Gauge("ludus_workqueue_depth", "Jobs waiting for a reconcile pass")
LAST_WATCH_EVENT: Final = Gauge(
    "ludus_last_watch_event_timestamp_seconds", "When the operator last received a watch event (stalls show here)"
)
API_THROTTLED: Final = Counter(
    "ludus_api_throttled_total",
    "Requests the API server throttled (429, 503) that were sent again after its Retry-After",
)
POD_PARSE_ERRORS: Final = Counter(
    "ludus_pod_parse_errors_total",
    "Pod events whose content could not be read (the pod is kept as Unknown; the watch goes on)",
)
POD_WATCH_RELISTS: Final = Counter(
    "ludus_pod_watch_relists_total",
    "Times the pod watch listed again: its resume point expired (410 Gone), or it failed (e.g. an API server restart)",
    ["reason"],
)
JOB_PRODUCTIVE_SECONDS: Final = Counter(
    "ludus_job_productive_seconds_total",
    "Wall seconds of finished TrainingJobs that went into training progress kept (status.goodput)",
    ["namespace"],
)
JOB_BADPUT_SECONDS: Final = Counter(
    "ludus_job_badput_seconds_total",
    "Wall seconds of finished TrainingJobs that went elsewhere, by cause (status.goodput.badput)",
    ["namespace", "category"],
)
JOB_STEPS_REDONE: Final = Counter(
    "ludus_job_steps_redone_total", "Training steps finished TrainingJobs ran again after disruptions", ["namespace"]
)

SWEEP_TRIALS_CREATED: Final = Counter("ludus_sweep_trials_created_total", "Trial TrainingJobs sweeps created",
                                      ["namespace"])
SWEEP_TRIALS: Final = Gauge("ludus_sweep_trials", "A sweep's trials by state", ["namespace", "sweep", "state"])
SWEEP_BEST: Final = Gauge("ludus_sweep_best_objective", "The best trial's objective value", ["namespace", "sweep"])
SWEEP_TRIAL_OBJECTIVE: Final = Gauge(
    "ludus_sweep_trial_objective", "Each finished trial's objective value (the dashboard's trials over time)",
    ["namespace", "sweep", "trial"],
)


def observe_sweep(namespace: str, sweep: str, status: Any) -> None:
    """A sweep's counts, best value and each trial's objective, as its status has them."""
    for state in ("running", "succeeded", "failed", "stopped"):
        SWEEP_TRIALS.labels(namespace=namespace, sweep=sweep, state=state).set(getattr(status, state))
    if status.best is not None:
        SWEEP_BEST.labels(namespace=namespace, sweep=sweep).set(status.best.value)
    for trial in status.trials:
        if trial.value is not None:
            SWEEP_TRIAL_OBJECTIVE.labels(namespace=namespace, sweep=sweep, trial=str(trial.number)).set(trial.value)


CT_RUNS_STARTED: Final = Counter("ludus_ct_runs_started_total", "Runs continuous trainings started, by trigger",
                                 ["namespace", "trigger"])
CT_DECISIONS: Final = Counter(
    "ludus_ct_promotion_decisions_total",
    "Promotion decisions: promoted (FirstChampion, BetterObjective, Manual) or rejected, with the reason",
    ["namespace", "result", "reason"],
)
CT_CHAMPION_OBJECTIVE: Final = Gauge("ludus_ct_champion_objective", "The champion model's objective value",
                                     ["namespace", "name", "metric"])
CT_CHAMPION_SINCE: Final = Gauge("ludus_ct_champion_promoted_timestamp_seconds",
                                 "When the champion was promoted (Unix time)", ["namespace", "name"])


def observe_continuous(namespace: str, name: str, status: Any) -> None:
    """The champion's objective and age, as the status has them."""
    champion, objective = status.champion, status.objective
    if champion is None:
        return
    if objective is not None and objective.metric in champion.evaluation:
        CT_CHAMPION_OBJECTIVE.labels(namespace=namespace, name=name, metric=objective.metric).set(
            champion.evaluation[objective.metric])
    if champion.promoted_at is not None:
        CT_CHAMPION_SINCE.labels(namespace=namespace, name=name).set(champion.promoted_at.timestamp())
