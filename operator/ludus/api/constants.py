"""Names shared by the operator, its tests and the trainer image.

Every label, annotation, condition type and reason lives here so that the
builders, the status computation and the tests agree on one spelling.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "ludus.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "TrainingJob"
PLURAL: Final = "trainingjobs"
SINGULAR: Final = "trainingjob"
SHORT_NAMES: Final = ("tj",)
CATEGORIES: Final = ("ludus", "all-training")

# The longest job name we accept: pod names are `<job>-worker-<i>` and are also
# used as pod hostnames (DNS labels, 63 characters), and the job name is a label
# value. 48 leaves room for "-worker-" plus a four-digit index and "-rdzv".
MAX_JOB_NAME_LENGTH: Final = 48

# The Sweep resource: a hyperparameter search whose trials are TrainingJobs it owns.
SWEEP_KIND: Final = "Sweep"
SWEEP_PLURAL: Final = "sweeps"
SWEEP_SINGULAR: Final = "sweep"
SWEEP_SHORT_NAMES: Final = ("sw",)
# Trials are `<sweep>-<number>` TrainingJobs: room for "-" and five digits within MAX_JOB_NAME_LENGTH.
MAX_SWEEP_NAME_LENGTH: Final = 42
# Each trial TrainingJob carries its sweep and number as labels (`kubectl get tj -l ludus.dev/sweep=NAME`)
# and its values as an annotation: with the status, the record a restarted operator rebuilds from.
LABEL_SWEEP: Final = "ludus.dev/sweep"
LABEL_TRIAL: Final = "ludus.dev/trial"
ANNOTATION_TRIAL_PARAMETERS: Final = "ludus.dev/trial-parameters"
ANNOTATION_STOPPED_EARLY: Final = "ludus.dev/stopped-early"

# The ContinuousTraining resource: retraining runs (TrainingJobs it owns) and a champion model.
CT_KIND: Final = "ContinuousTraining"
CT_PLURAL: Final = "continuoustrainings"
CT_SINGULAR: Final = "continuoustraining"
CT_SHORT_NAMES: Final = ("ct",)
# Runs are `<ct>-<number>` and publish pods `<ct>-publish-<number>`: room within MAX_JOB_NAME_LENGTH.
MAX_CT_NAME_LENGTH: Final = 36
# Each run carries its resource and number as labels and what started it as annotations: the runs in
# the API server are the record a restarted operator rebuilds from (no trigger fires twice).
LABEL_CT: Final = "ludus.dev/continuous-training"
LABEL_RUN: Final = "ludus.dev/run"
LABEL_PUBLISH: Final = "ludus.dev/publish"
LABEL_RECORD: Final = "ludus.dev/record"  # a Sweep's record pod, valued the trial it records
ANNOTATION_TRIGGER: Final = "ludus.dev/trigger"
ANNOTATION_SCHEDULED_TIME: Final = "ludus.dev/scheduled-time"
# Set by users (and `ludus`): the data version a run trains on, a manual retrain, a manual promotion.
ANNOTATION_DATA_VERSION: Final = "ludus.dev/data-version"
ANNOTATION_RETRAIN: Final = "ludus.dev/retrain"
ANNOTATION_PROMOTE: Final = "ludus.dev/promote"
# What a trial's trainer reads: every value as JSON, and each as its own variable.
ENV_INIT_FROM: Final = "LUDUS_INIT_FROM"
ENV_INIT_STRICT: Final = "LUDUS_INIT_STRICT"
ENV_INIT_FREEZE: Final = "LUDUS_INIT_FREEZE"
VOLUME_INIT: Final = "init-model"
INIT_MOUNT: Final = "/ludus/init"
ENV_TRIAL_PARAMETERS: Final = "LUDUS_TRIAL_PARAMETERS"
ENV_TRIAL_PARAMETER_PREFIX: Final = "LUDUS_PARAM_"

# Labels put on every child; selectors use the first two.
LABEL_JOB_NAME: Final = "ludus.dev/job-name"
LABEL_ROLE: Final = "ludus.dev/role"
LABEL_REPLICA_INDEX: Final = "ludus.dev/replica-index"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "ludus-operator"

ROLE_WORKER: Final = "worker"
ROLE_RENDEZVOUS: Final = "rendezvous"

# Kueue's queue label: a job that carries it starts suspended until admitted.
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
# Kueue's Workload API, which Ludus writes for queued jobs (Kueue's v1beta2, its storage version).
KUEUE_GROUP: Final = "kueue.x-k8s.io"
KUEUE_VERSION: Final = "v1beta2"
KUEUE_WORKLOAD_API: Final = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
KUEUE_WORKLOAD_KIND: Final = "Workload"
# Kueue admitted the job, but its flavors cannot be applied to its pods (a flavor that cannot be read, a
# node label the template sets otherwise): the Workload is finished, as Kueue's own integrations do.
REASON_FAILED_TO_START: Final = "FailedToStart"

# Set when Ludus suspended a queued job on first sight, so it does not do it again after admission.
ANNOTATION_QUEUED: Final = "ludus.dev/queued"
# Present while spec.suspend is the queue's (waiting for admission, or evicted), not the user's: only
# such a suspension is lifted when Kueue admits the job.
ANNOTATION_QUEUE_SUSPENDED: Final = "ludus.dev/queue-suspended"
# The job's place in Kueue: True once its Workload is admitted; False with Kueue's words while it waits.
COND_ADMITTED: Final = "Admitted"  # Kueue admitted the job's Workload (set only for jobs queued through Kueue)
REASON_ADMITTED: Final = "Admitted"  # Kueue reserved the quota; the job runs
REASON_QUEUED: Final = "Queued"  # waiting in its LocalQueue for quota
REASON_INADMISSIBLE: Final = "Inadmissible"  # Kueue cannot admit it as things are (no such LocalQueue, too big)
REASON_EVICTED: Final = "Evicted"  # Kueue took the quota back (preempted by a higher priority, ...)
REASON_KUEUE_MISSING: Final = "KueueNotInstalled"  # the Workload API is not served
# spec.managedBy: which controller runs a job. Unset or ours: this operator; MultiKueue's: Kueue dispatches it
# to a worker cluster and copies its status back (this operator keeps only its Workload); anything else:
# another controller, and this operator leaves the job alone (as Kubernetes' Job controller does).
MANAGED_BY_LUDUS: Final = "ludus.dev/trainingjob-controller"
MANAGED_BY_MULTIKUEUE: Final = "kueue.x-k8s.io/multikueue"
# The Workload a job must use instead of making its own (MultiKueue's copy of a job in a worker cluster).
LABEL_KUEUE_PREBUILT_WORKLOAD: Final = "kueue.x-k8s.io/prebuilt-workload-name"
# A MultiKueue job waits on worker clusters its manager cannot reach (named in the Admitted condition).
REASON_WORKER_CLUSTER_UNAVAILABLE: Final = "WorkerClusterUnavailable"
# Scaled past what Kueue admitted: suspended, and its Workload asked again at the new size.
REASON_RESIZED: Final = "Resized"

# Ports inside the pods.
RENDEZVOUS_PORT: Final = 29400
TRAINER_METRICS_PORT: Final = 9090

EXTENDED_RESOURCE_GPU: Final = "nvidia.com/gpu"

# Container and volume names, fixed so users can refer to them in overrides.
CONTAINER_TRAINER: Final = "trainer"
CONTAINER_RENDEZVOUS: Final = "rendezvous"
# A worker's init container with spec.checkpoint.uri: can this pod write to the object store?
CONTAINER_STORE_CHECK: Final = "checkpoint-store-check"
STORE_CHECK_COMMAND: Final = ("python", "-m", "ludus_trainer.storecheck")
VOLUME_SHM: Final = "dshm"
# The one writable place besides the volumes: every container's root file system is read-only.
VOLUME_TMP: Final = "tmp"
TMP_MOUNT: Final = "/tmp"
VOLUME_CHECKPOINT: Final = "checkpoint"

# Phases, in the order a healthy job passes through them.
PHASE_PENDING: Final = "Pending"
PHASE_RUNNING: Final = "Running"
PHASE_RESTARTING: Final = "Restarting"
PHASE_SUSPENDED: Final = "Suspended"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
TERMINAL_PHASES: Final = frozenset({PHASE_SUCCEEDED, PHASE_FAILED})

# Condition types (status.conditions[].type).
COND_CREATED: Final = "Created"  # the Service and the pods were created once
COND_RUNNING: Final = "Running"  # every desired worker runs
COND_RESTARTING: Final = "Restarting"  # the worker group restarts (a failure, a stall, a lost node)
COND_SUSPENDED: Final = "Suspended"  # spec.suspend holds the job (or a Sweep's trials, a ContinuousTraining's runs)
COND_SUCCEEDED: Final = "Succeeded"  # the job (or a Sweep) ended well
COND_FAILED: Final = "Failed"  # the job (or a Sweep) ended badly, or its spec was refused
# False while worker 0's progress cannot be read (the last progress stays in status).
COND_PROGRESS: Final = "ProgressReported"  # worker 0's metrics page can be read (False: why not)
REASON_PROGRESS_REPORTED: Final = "Reporting"  # ProgressReported is True
# Set only with spec.tracking: whether everything the trainer recorded reached the experiment tracker.
COND_TRACKED: Final = "Tracked"
REASON_TRACKED: Final = "Recorded"  # everything so far is in the tracker's run
REASON_NO_TRACKER: Final = "NoTrackingServer"  # spec.tracking names no uri and the operator has no default
# Reasons the trainer may give for Tracked=False; anything else it says becomes the first.
TRACKING_FAILURE_REASONS: Final = ("TrackerUnavailable", "TrackerRefused")

# Reasons (conditions and Events). One constant per cause a user can act on.
REASON_CREATED: Final = "WorkersCreated"  # the Service and pods were created
REASON_WAITING: Final = "WaitingForWorkers"  # some workers are not running yet
COND_SCHEDULED: Final = "PodsScheduled"  # set only once a pod could not be scheduled
# Created is False while the API server refuses one of the job's children (quota, Pod Security, a missing
# ServiceAccount), naming the child and the API server's words; True again once it accepts them.
REASON_CREATE_REFUSED: Final = "CreateRefused"
# Set only once the API server refused a change to a child (a trial's suspension, a job's Kueue suspension, a
# Workload's status): False naming the child and the API server's words; True again once it accepts one.
COND_UPDATED: Final = "ChildrenUpdated"
REASON_UPDATE_REFUSED: Final = "UpdateRefused"
REASON_UPDATED: Final = "ChildrenUpdated"
# Set only once a started job's stored spec stopped validating (an operator upgrade or rollback, a CRD
# loosened by hand): False with InvalidSpec naming the field while its pods keep running untouched.
COND_SPEC_VALID: Final = "SpecValid"
REASON_SPEC_VALID: Final = "SpecValid"  # the spec validates again
# Set only once one of the job's pods could not be read (what it reports is malformed or hostile): False
# naming the pods and why, while each is kept as Unknown; True again once none is.
COND_PODS_READABLE: Final = "PodsReadable"
REASON_POD_UNREADABLE: Final = "PodUnreadable"
REASON_PODS_READABLE: Final = "PodsReadable"  # PodsReadable is True again
REASON_UNSCHEDULABLE: Final = "Unschedulable"  # the scheduler cannot place a pod (an unbound claim, no room)
REASON_SCHEDULED: Final = "AllScheduled"  # PodsScheduled is True again: every pod is placed
REASON_SECURITY_RELAXED: Final = "SecurityRelaxed"  # the template re-enables the token or a writable root
REASON_NO_GANG: Final = "GangSchedulingUnavailable"  # the job asks for a gang; the operator runs without one
REASON_TOO_LARGE: Final = "LargerThanNodes"  # no node (or all of them together) could ever hold the job
REASON_NO_SCHEDULER: Final = "SchedulerNotRunning"  # no scheduler answers for a pod: the one it names is not there
REASON_ALL_RUNNING: Final = "AllWorkersRunning"  # every desired worker is running
REASON_SUCCEEDED: Final = "AllWorkersSucceeded"  # workers exited 0
REASON_POD_FAILED: Final = "WorkerFailed"  # a worker exited non-zero, and it is retried
# The trainer declared a failure no restart mends, under a reason that is not one CamelCase word.
REASON_TRAINER_ERROR: Final = "TrainerError"
REASON_GROUP_RESTART: Final = "GroupRestart"  # pods stopped because the whole worker group restarts
REASON_EXIT_CODE_FATAL: Final = "NonRetryableExitCode"  # ExitCode policy saw a fatal code
REASON_NEVER_RESTART: Final = "RestartPolicyNever"  # Never policy saw a failure
REASON_POD_DELETED: Final = "WorkerDeleted"  # a worker pod was deleted by someone else
REASON_POD_EVICTED: Final = "WorkerEvicted"  # a worker pod was evicted or preempted
REASON_NODE_LOST: Final = "NodeLost"  # the worker's node went away
REASON_BACKOFF_LIMIT: Final = "BackoffLimitExceeded"  # too many restarts
REASON_DEADLINE: Final = "DeadlineExceeded"  # activeDeadlineSeconds passed
REASON_SUSPENDED: Final = "Suspended"  # spec.suspend is true
REASON_RESUMED: Final = "Resumed"  # spec.suspend went back to false
REASON_INVALID_SPEC: Final = "InvalidSpec"  # the operator's own validation refused the spec
REASON_SCALED: Final = "Scaled"  # spec.replicas changed
REASON_STALLED: Final = "Stalled"  # no training progress for progressDeadlineSeconds
REASON_TTL_EXPIRED: Final = "TTLExpired"  # ttlSecondsAfterFinished passed; the job is deleted
REASON_PROGRESS_UNREACHABLE: Final = "EndpointUnreachable"  # worker 0's metrics page cannot be reached
REASON_PROGRESS_INVALID: Final = "InvalidResponse"  # worker 0's metrics page is not a readable progress page
REASON_JOB_FINISHED: Final = "JobFinished"  # a pod deleted by cleanPodPolicy once the job finished
REASON_RENDEZVOUS_ENDED: Final = "RendezvousEnded"  # the rendezvous store exited: deleted to start anew
REASON_WORKER_REPLACED: Final = "WorkerReplaced"  # a restart's reason for the metrics, when none of the known ones
COND_INITIALIZED: Final = "InitSourceReady"  # spec.init's model is there to start from (set only with spec.init)
REASON_INIT_WAITING: Final = "InitSourceNotReady"  # init.fromJob's job has not succeeded yet: the job waits
REASON_INIT_UNUSABLE: Final = "InitSourceUnusable"  # init's model can never come (its job failed, has no claim)
REASON_INIT_READY: Final = "InitSourceReady"  # the model is resolved and pinned in status.initializedFrom
REASON_MODEL_LOADED: Final = "ModelLoaded"  # the trainer loaded the model it starts from (file, step, SHA-256)

# ContinuousTraining: its phases besides the job phases above, conditions and reasons.
CT_PHASE_WAITING: Final = "Waiting"  # no run is active; the next trigger starts one
CT_PHASE_PUBLISHING: Final = "Publishing"  # a promoted run's model is being published as the champion
CT_PHASE_REPLACED: Final = "Replaced"  # a run's record: stopped by a newer run (concurrencyPolicy Replace)
CT_COND_VALID: Final = "Valid"  # the spec passed the operator's own checks (cron, time zone, thresholds)
CT_COND_DATA: Final = "DataVersionAvailable"  # the data version the spec names could be read
CT_COND_CHAMPION: Final = "ChampionAvailable"  # a promoted model serves from the champion path
# Set once a run that should have been promoted had no exported model (False, naming the run and the call that
# exports one); True again once a run's model is published.
CT_COND_MODEL_EXPORTED: Final = "ModelExported"
CT_REASON_NO_EXPORT: Final = "NoExportedModel"  # the run wrote no model: its script never called export_model
CT_REASON_MODEL_PUBLISHED: Final = "ModelPublished"  # ModelExported is True again
CT_COND_RUN_SCHEDULED: Final = "RunScheduled"  # the active run's pods can be placed (False: why not)
CT_REASON_SPEC_VALID: Final = "SpecValid"  # Valid is True
CT_REASON_DATA_READ: Final = "DataVersionRead"  # the ConfigMap key was read
CT_REASON_DATA_MISSING: Final = "DataVersionMissing"  # the ConfigMap or its key cannot be read
CT_REASON_NO_CHAMPION: Final = "NoChampionYet"  # no run has been promoted
CT_REASON_RUN_PLACED: Final = "Scheduled"  # RunScheduled is True again
CT_REASON_RUN_STARTED: Final = "RunStarted"  # a trigger started a run
CT_REASON_SKIPPED: Final = "ScheduleSkipped"  # a firing was skipped: a run was active (concurrencyPolicy Forbid)
CT_REASON_REPLACED: Final = "RunReplaced"  # an active run was stopped for a newer one (concurrencyPolicy Replace)
CT_REASON_PROMOTED: Final = "Promoted"  # a run's model became the champion
CT_REASON_REJECTED: Final = "ModelRejected"  # a finished run's model was not promoted
CT_REASON_RUN_FAILED: Final = "RunFailed"  # a run failed; its model is not considered
CT_REASON_PUBLISH_FAILED: Final = "PublishFailed"  # the publish pod could not make the model the champion
CT_REASON_REGISTRY_NOT_UPDATED: Final = "RegistryNotUpdated"  # a rejected run's version could not be tagged in MLflow
CT_REASON_PUBLISHING: Final = "Publishing"  # a run's record while its model is published
CT_REASON_MANUAL: Final = "Manual"  # promoted by hand (`ludus promote`)
CT_REASON_PROMOTE_REFUSED: Final = "PromoteRefused"  # a promotion by hand named a run that cannot be promoted
CT_REASON_FIRST_CHAMPION: Final = "FirstChampion"  # the first evaluated run, with no champion before it
CT_REASON_BETTER: Final = "BetterObjective"  # beats the champion's objective by at least minImprovement
CT_REASON_NOT_EVALUATED: Final = "NotEvaluated"  # the run reported no value of the objective
CT_REASON_NOT_BETTER: Final = "NotBetterEnough"  # no better than the champion by minImprovement
CT_REASON_THRESHOLD: Final = "ThresholdNotMet"  # a threshold does not hold, or cannot be checked

# Sweep: reasons besides the job's (its conditions are the job's Succeeded, Failed, Running, Suspended).
SWEEP_REASON_MAX_TRIALS: Final = "MaxTrialsReached"  # maxTrials trials finished
SWEEP_REASON_EXHAUSTED: Final = "SearchSpaceExhausted"  # every combination of a grid ran
SWEEP_REASON_TOO_MANY_FAILED: Final = "TooManyFailedTrials"  # maxFailedTrials trials failed
SWEEP_REASON_OBJECTIVE_MISSING: Final = "ObjectiveNotReported"  # succeeded trials never reported the objective
SWEEP_REASON_RUNNING: Final = "TrialsRunning"  # trials run (Running True, or Suspended False again)
SWEEP_REASON_TRIAL_CREATED: Final = "TrialCreated"  # a trial's TrainingJob was created
SWEEP_REASON_STOPPED_EARLY: Final = "TrialStoppedEarly"  # median stopping ended a trial worse than its peers
SWEEP_REASON_TRACKER_NOT_UPDATED: Final = "TrackerNotUpdated"  # a stopped trial's run could not be tagged
SWEEP_REASON_TRIAL_DELETED: Final = "TrialDeleted"  # a trial's TrainingJob was deleted before it finished
SWEEP_TRIAL_DELETED: Final = "Deleted"  # a trial's recorded phase once its TrainingJob was deleted unfinished
SWEEP_REASON_NEW_BEST: Final = "NewBestTrial"  # a trial beat the best so far

# Restart policies and clean-pod policies (spec enums).
RESTART_ON_FAILURE: Final = "OnFailure"
RESTART_EXIT_CODE: Final = "ExitCode"
RESTART_NEVER: Final = "Never"
CLEAN_NONE: Final = "None"
CLEAN_RUNNING: Final = "Running"
CLEAN_ALL: Final = "All"

# Environment variables torchrun reads; only ludus.frameworks.torch sets them.
RESERVED_ENV_PREFIX: Final = "PET_"

# Environment variables the trainer image reads (ludus_trainer uses the same names).
ENV_JOB_NAME: Final = "LUDUS_JOB_NAME"
ENV_JOB_NAMESPACE: Final = "LUDUS_JOB_NAMESPACE"
ENV_REPLICA_INDEX: Final = "LUDUS_REPLICA_INDEX"
ENV_CHECKPOINT_DIR: Final = "LUDUS_CHECKPOINT_DIR"
ENV_CHECKPOINT_INTERVAL: Final = "LUDUS_CHECKPOINT_INTERVAL"
# Object storage (spec.checkpoint.uri): where, and how to reach it; the credentials come from the Secret
# spec.checkpoint.secretRef names, under these keys, as these variables.
ENV_CHECKPOINT_URI: Final = "LUDUS_CHECKPOINT_URI"
ENV_S3_ENDPOINT: Final = "LUDUS_S3_ENDPOINT"
S3_CREDENTIAL_KEYS: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# The experiment tracker (spec.tracking): MLflow's own variables for the server and its credentials.
ENV_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
ENV_TRACKING_EXPERIMENT: Final = "LUDUS_TRACKING_EXPERIMENT"
ENV_TRACKING_PARENT: Final = "LUDUS_TRACKING_PARENT"  # "Sweep:<namespace>/<name>": a trial's parent run
ENV_JOB_UID: Final = "LUDUS_JOB_UID"
# A ContinuousTraining's runs register their models as versions of one MLflow registered model of this name.
ENV_TRACKING_REGISTERED_MODEL: Final = "LUDUS_TRACKING_REGISTERED_MODEL"
ENV_IMAGE: Final = "LUDUS_IMAGE"
TRACKING_CREDENTIAL_KEYS: Final = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
ENV_METRICS_PORT: Final = "LUDUS_METRICS_PORT"
ENV_OBJECTIVE: Final = "LUDUS_OBJECTIVE"  # "<metric>:<goal>" when spec.objective is set
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
ENV_TERMINATION_LOG: Final = "LUDUS_TERMINATION_LOG"  # where the trainer leaves its evaluation for the status

# Kopf finalizer and storage prefix, fixed from the first release (see STYLE.md).
FINALIZER: Final = f"{GROUP}/finalizer"
FIELD_MANAGER: Final = "ludus-operator"

# The API server refuses Event messages over 1 KiB; we cut ours to this length.
MAX_EVENT_MESSAGE: Final = 1024
