"""The TrainingJob API as pydantic models: the one source of the CRD.

`ludus.api.crd` turns these models into the CustomResourceDefinition; the
operator parses every object it sees through them. Field descriptions become
`kubectl explain` text, so they are written for the ML engineer reading it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ludus.api import constants as c

# A Kubernetes quantity ("500m", "2", "1.5", "2Gi", "1e3"), non-negative, in the grammar of
# k8s.io/apimachinery's resource.Quantity. The model and the CRD's CEL rule share this pattern
# (written without backslashes, so it reads the same inside a CEL string).
QUANTITY_PATTERN = r"^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
QUANTITY_MESSAGE = "must be a Kubernetes quantity such as '2', '500m' or '4Gi'"

# Kubernetes object names, for every field that names another object (and so may reach a request
# path): a DNS label (63) or a DNS subdomain (253), as the referenced kind requires.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Durations fit a timedelta added to any time this century; ten years is beyond any training run.
MAX_DURATION_SECONDS = 10 * 366 * 24 * 3600
# Steps, counts and seeds beyond this are nobody's (and JSON integers stay exact below 2^53).
MAX_COUNT = 2**53 - 1
# A label value, an annotation value, one argument: Kubernetes' own limits or generous ones.
MAX_LABEL_VALUE = 63
MAX_ANNOTATION_VALUE = 4096
MAX_ARGUMENT = 4096
# Opaque Kubernetes sub-objects (a volume, a toleration, an affinity) are passed through; their keys
# are bounded here and their content by the pod-security check and the API server's own validation.
MAX_OPAQUE_KEYS = 16
# Map keys are bounded by a CEL rule (a schema can only bound the values): a qualified label key.
_KEYS_RULE: dict[str, Any] = {"rule": "self.all(k, size(k) <= 253)", "message": "keys must be at most 253 characters"}

SubdomainName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
LabelName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
Argument = Annotated[str, Field(max_length=MAX_ARGUMENT)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]
AnnotationValue = Annotated[str, Field(max_length=MAX_ANNOTATION_VALUE)]
Opaque = Annotated[dict[str, Any], Field(max_length=MAX_OPAQUE_KEYS)]


def string_map(max_entries: int, description: str) -> Any:
    """A map of strings (labels, annotations, a node selector): entries and keys bounded here, values
    by the field's type."""
    return Field(default_factory=dict, max_length=max_entries, description=description,
                 json_schema_extra={"x-kubernetes-validations": [_KEYS_RULE]})


# An int-or-string cannot carry maximum or maxLength (the API server wants its two alternatives bare):
# this rule bounds both, and the model does the same.
MAX_INT_OR_STRING = 2**62
MAX_INT_OR_STRING_LENGTH = 64
_INT_OR_STRING_BOUNDS = {
    "rule": f"type(self) == int ? int(self) <= {MAX_INT_OR_STRING} : size(string(self)) <= {MAX_INT_OR_STRING_LENGTH}",
    "message": f"must be at most {MAX_INT_OR_STRING} or {MAX_INT_OR_STRING_LENGTH} characters",
}

IntOrString = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "x-kubernetes-validations": [_INT_OR_STRING_BOUNDS]}),
]

Quantity = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                _INT_OR_STRING_BOUNDS,
                {
                    "rule": f"type(self) == int ? int(self) >= 0 : string(self).matches('{QUANTITY_PATTERN}')",
                    "message": QUANTITY_MESSAGE,
                },
            ],
        }
    ),
]


class Model(BaseModel):
    """Base for every API type: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def _check_quantity(value: int | str, field: str) -> int | str:
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT_OR_STRING:
            raise ValueError(f"{field} must lie in [0, {MAX_INT_OR_STRING}]")
        return value
    if len(value) > MAX_INT_OR_STRING_LENGTH:
        raise ValueError(f"{field} must be at most {MAX_INT_OR_STRING_LENGTH} characters")
    if not _QUANTITY.fullmatch(value):
        raise ValueError(f"{field} {QUANTITY_MESSAGE}, not {value!r}")
    return value


class StatusModel(Model):
    """Base for what a status holds: fields it does not know are ignored, at every depth. Another
    operator version (an upgrade, a rollback) may have written them; a running job is never failed
    because its status carries something this version does not read."""

    model_config = ConfigDict(extra="ignore")


class EnvVar(Model):
    """One environment variable for the trainer container."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description="Name of the variable. Names starting with PET_ are reserved for torchrun's wiring.",
    )
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: Opaque | None = Field(
        default=None,
        description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef).",
    )


class Resources(Model):
    """What each worker pod asks for; requests and limits are set from it."""

    gpus: int = Field(
        default=0,
        ge=0,
        le=64,
        description="NVIDIA GPUs per worker pod (the nvidia.com/gpu extended resource). 0 trains on the CPU.",
    )
    cpu: Quantity = Field(default="1", description="CPU request per worker pod, a Kubernetes quantity.")
    memory: Quantity = Field(
        default="2Gi", description="Memory request and limit per worker pod, a Kubernetes quantity."
    )
    shared_memory: Quantity = Field(
        default="1Gi",
        description="Size of the in-memory /dev/shm volume each worker gets (data loaders and NCCL need it).",
    )

    @field_validator("cpu", "memory", "shared_memory")
    @classmethod
    def _quantity(cls, value: int | str, info: Any) -> int | str:
        return _check_quantity(value, f"resources.{to_camel(info.field_name)}")


class PodTemplateOverride(Model):
    """Scheduling and pod settings copied onto every worker pod."""

    labels: dict[str, LabelValue] = string_map(64, "Extra labels for worker pods.")
    annotations: dict[str, AnnotationValue] = string_map(64, "Extra annotations for worker pods.")
    node_selector: dict[str, LabelValue] = string_map(32, "Node labels a worker pod requires.")
    tolerations: list[Opaque] = Field(
        default_factory=list, max_length=32, description="Kubernetes tolerations, e.g. for tainted GPU nodes."
    )
    affinity: Opaque | None = Field(default=None, description="A Kubernetes Affinity for worker pods.")
    topology_spread_constraints: list[Opaque] = Field(
        default_factory=list, max_length=16,
        description="Kubernetes TopologySpreadConstraints for worker pods, e.g. one worker per node "
        "(topologyKey kubernetes.io/hostname, a labelSelector on ludus.dev/job-name and ludus.dev/role: worker).",
    )
    volumes: list[Opaque] = Field(default_factory=list, max_length=64, description="Extra Kubernetes volumes.")
    volume_mounts: list[Opaque] = Field(
        default_factory=list, max_length=64, description="Where the extra volumes are mounted in the trainer container."
    )
    service_account_name: SubdomainName | None = Field(
        default=None, description="ServiceAccount the worker pods run as.")
    priority_class_name: SubdomainName | None = Field(default=None, description="PriorityClass of the worker pods.")
    scheduler_name: SubdomainName | None = Field(
        default=None, description="Scheduler for the worker pods, e.g. volcano for gang scheduling."
    )
    run_as_user: int | None = Field(
        default=1000,
        ge=0,
        le=2**31 - 1,
        description="UID the containers run as. Pods run as non-root by default (restricted Pod Security).",
    )
    automount_service_account_token: StrictBool = Field(
        default=False,
        description="Mount the ServiceAccount's API token into the pods. Off: the trainer never calls the API; "
        "a script that does turns it on (noted in an Event).",
    )
    read_only_root_filesystem: StrictBool = Field(
        default=True,
        description="Containers get a read-only root file system; /tmp, /dev/shm, the checkpoint directory and "
        "the volumes are writable. false gives a writable root (noted in an Event).",
    )


class NetworkPolicySpec(Model):
    """Who may connect to the job's pods."""

    enabled: bool | None = Field(
        default=None,
        description="A NetworkPolicy for the job's pods: ingress only from the job's own pods (rendezvous, "
        "gloo/NCCL) and, to the metrics port, from the operator and the metrics scrapers; egress open. "
        "Unset: the operator's default (--network-policy, on).",
    )


class Scheduling(Model):
    """How the job's pods are placed."""

    gang: bool | None = Field(
        default=None,
        description="true: place every pod the job needs to start (workers and store) as one gang, through the "
        "gang scheduler the operator runs with (--gang-scheduling); false: never; unset: the operator's default "
        "(a gang whenever it runs with a gang scheduler).",
    )


class Elastic(Model):
    """Elastic range for torchrun: the job keeps training while workers come and go within it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "elastic.minReplicas must not exceed elastic.maxReplicas",
                }
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=1024, description="Fewest workers that may train.")
    max_replicas: int = Field(ge=1, le=1024, description="Most workers that may train.")
    max_restarts: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="How many times torchrun restarts the worker group inside the pods (PET_MAX_RESTARTS).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Elastic:
        if self.min_replicas > self.max_replicas:
            raise ValueError("elastic.minReplicas must not exceed elastic.maxReplicas")
        return self


class SecretReference(Model):
    """A Secret in the job's namespace."""

    name: SubdomainName = Field(description="The Secret's name.")


# s3://bucket/prefix: a bucket name as S3 allows one, then path segments without `..`.
S3_URI_PATTERN: Final = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()=+,;:@-]+)*/?$"


class Checkpoint(Model):
    """Where the trainer keeps checkpoints so that restarted workers resume."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!(has(self.claimName) && has(self.uri))",
                 "message": "checkpoint takes claimName (a volume) or uri (object storage), not both",
                 "fieldPath": ".uri"},
                {"rule": "has(self.uri) || !(has(self.secretRef) || has(self.endpoint) || has(self.region))",
                 "message": "checkpoint.secretRef, endpoint and region are for object storage: set checkpoint.uri",
                 "fieldPath": ".uri"},
            ]
        }
    )

    claim_name: SubdomainName | None = Field(
        default=None,
        description="PersistentVolumeClaim mounted at `path` in every worker. Without it (and without `uri`) "
        "checkpoints stay in the pod.",
    )
    uri: str | None = Field(
        default=None, max_length=1024, pattern=S3_URI_PATTERN,
        description="Object storage instead of a claim: s3://bucket/prefix. Every worker writes its own "
        "shard there and a checkpoint counts once committed, so a job's workers may spread over nodes.",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!self.matches('/[.][.]?(/|$)')", "message": "checkpoint.uri must not contain . or .. segments"},
        ]},
    )
    secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the object store's credentials, keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(given to the workers as those variables; never copied into the spec or the status). Without it the "
        "workers use what their environment provides (a workload identity).",
    )
    endpoint: str | None = Field(
        default=None, max_length=253, pattern=r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$",
        description="An S3-compatible store's endpoint (http(s)://host:port); unset: AWS S3.",
    )
    region: str | None = Field(default=None, min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$",
                               description="The bucket's region (default us-east-1).")
    path: str = Field(default="/checkpoints", max_length=1024, pattern=r"^/",
                      description="Checkpoint directory in the container.")
    sub_path: str | None = Field(
        default=None, max_length=253, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="Directory inside the claim this job uses (several jobs can share one claim; a Sweep gives "
        "each trial its own).",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!self.matches('(^|/)[.][.](/|$)')", "message": "subPath must stay inside the claim (no '..')"},
        ]},
    )
    interval_steps: int = Field(default=100, ge=1, le=MAX_COUNT, description="Steps between checkpoints.")

    @field_validator("sub_path")
    @classmethod
    def _no_parent(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("subPath must stay inside the claim (no '..')")
        return value

    @field_validator("uri")
    @classmethod
    def _no_dots(cls, value: str | None) -> str | None:
        if value is not None and {".", ".."} & set(value.removeprefix("s3://").split("/")[1:]):
            raise ValueError("checkpoint.uri must not contain . or .. segments")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> Checkpoint:
        if self.claim_name and self.uri:
            raise ValueError("checkpoint takes claimName (a volume) or uri (object storage), not both")
        if not self.uri and (self.secret_ref or self.endpoint or self.region):
            raise ValueError("checkpoint.secretRef, endpoint and region are for object storage: set checkpoint.uri")
        return self


# http(s)://host[:port][/path]: no user or password in the URI (credentials come from secretRef), no query.
TRACKING_URI_PATTERN: Final = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$"


class Tracking(Model):
    """The experiment tracker (an MLflow tracking server) the trainer records this run in."""

    uri: str | None = Field(
        default=None, max_length=512, pattern=TRACKING_URI_PATTERN,
        description="The MLflow tracking server, http(s)://host:port[/path] (no credentials in it: see secretRef). "
        "Unset: the operator's default (the chart's tracking.uri).",
    )
    experiment: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The MLflow experiment the run goes in (created when missing). Unset: the job's namespace.",
    )
    secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the tracking server's credentials, any of the keys MLFLOW_TRACKING_USERNAME, "
        "MLFLOW_TRACKING_PASSWORD and MLFLOW_TRACKING_TOKEN (given to the trainers as those variables; "
        "never copied into the spec or the status).",
    )


class Init(Model):
    """Start from a model (transfer learning): weights only, a new optimizer, from step 0."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "(has(self.claimName) ? 1 : 0) + (has(self.fromJob) ? 1 : 0) + (has(self.uri) ? 1 : 0) == 1",
                 "message": "init needs exactly one of claimName (a model on a claim), fromJob (another "
                 "TrainingJob's model) or uri (a model in object storage)", "fieldPath": ".fromJob"},
            ]
        }
    )

    claim_name: SubdomainName | None = Field(
        default=None, description="PersistentVolumeClaim holding the model (mounted read-only).")
    from_job: str | None = Field(
        default=None, min_length=1, max_length=c.MAX_JOB_NAME_LENGTH, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="A TrainingJob in this namespace whose model to start from: it must have succeeded with a "
        "checkpoint claim. The job waits for it, and status.initializedFrom pins what was loaded.")
    uri: str | None = Field(
        default=None, max_length=1024, pattern=S3_URI_PATTERN,
        description="A model in object storage (s3://bucket/prefix/model: weights.pt and metadata.json, as a "
        "job with checkpoint.uri exports it), read with this job's checkpoint.uri endpoint and keys.",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!self.matches('/[.][.]?(/|$)')", "message": "init.uri must not contain . or .. segments"},
        ]},
    )
    path: str = Field(
        default="model", max_length=1024, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="The model's directory: in the claim (claimName), or in fromJob's checkpoint directory. "
        "The default, model, is what a finished job exports.",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!self.matches('(^|/)[.][.](/|$)')", "message": "init.path must stay inside the claim (no '..')"},
        ]},
    )
    strict: StrictBool = Field(
        default=True, description="Every tensor must fit; false loads what fits and re-initialises the rest "
        "(a new classifier head), listing both in the log.")
    freeze: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=64,
                              description="Module prefixes whose parameters stay fixed while training.")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("init.path must stay inside the claim (no '..')")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Init:
        if sum(x is not None for x in (self.claim_name, self.from_job, self.uri)) != 1:
            raise ValueError("init needs exactly one of claimName (a model on a claim), fromJob (another "
                             "TrainingJob's model) or uri (a model in object storage)")
        if self.uri is not None and any(part in (".", "..") for part in self.uri.removeprefix("s3://").split("/")):
            raise ValueError("init.uri must not contain . or .. segments")
        return self


class Objective(Model):
    """What "better" means for this job: one evaluation metric and its direction. The status reports
    it on its own; sweeps optimise it and continuous training compares models by it."""

    metric: str = Field(
        default="loss",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Evaluation metric, as the trainer reports it (accuracy, f1, eval_loss, or a script's own).",
    )
    goal: Literal["maximize", "minimize"] = Field(default="minimize", description="maximize or minimize.")


class TrainingJobSpec(Model):
    """What to train and how to run it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.elastic) || "
                    "(self.replicas >= self.elastic.minReplicas && self.replicas <= self.elastic.maxReplicas)",
                    "message": "spec.replicas must lie within [spec.elastic.minReplicas, spec.elastic.maxReplicas]",
                    "fieldPath": ".replicas",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!has(self.env) || self.env.all(e, !e.name.startsWith('PET_'))",
                    "message": "spec.env must not set PET_* variables: Ludus sets torchrun's wiring itself",
                    "fieldPath": ".env",
                },
                {
                    "rule": "has(self.managedBy) == has(oldSelf.managedBy) && "
                    "(!has(self.managedBy) || self.managedBy == oldSelf.managedBy)",
                    "message": "spec.managedBy is immutable: set it when the job is created",
                    "fieldPath": ".managedBy",
                },
                {
                    "rule": "type(self.nprocPerNode) == int ? int(self.nprocPerNode) >= 1 : "
                    "string(self.nprocPerNode) == 'auto'",
                    "message": "spec.nprocPerNode must be a positive integer or \"auto\"",
                    "fieldPath": ".nprocPerNode",
                },
                {
                    "rule": "!has(self.init) || !has(self.init.uri) || "
                    "(has(self.checkpoint) && has(self.checkpoint.uri))",
                    "message": "spec.init.uri is read with spec.checkpoint's object store (its endpoint and "
                    "secretRef): set spec.checkpoint.uri",
                    "fieldPath": ".init.uri",
                },
            ]
        }
    )

    image: str = Field(min_length=1, max_length=1024, description="Container image the workers run.")
    managed_by: str | None = Field(
        default=None,
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description=f"The controller that runs this job (a domain-prefixed path; immutable). Unset or "
        f"{c.MANAGED_BY_LUDUS}: the Ludus operator. {c.MANAGED_BY_MULTIKUEUE}: Kueue's MultiKueue runs it "
        "in a worker cluster and copies its status back; the operator here keeps only its Workload. "
        "Anything else: another controller, and the Ludus operator leaves the job alone.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent",
        description="When the kubelet pulls the image. IfNotPresent (also for :latest tags): nodes that "
        "already hold the image start workers at once.",
    )
    command: list[Argument] = Field(
        default_factory=list,
        max_length=64,
        description="Command run under torchrun in each worker, e.g. [python, -m, ludus_trainer]. "
        "Empty: the image's entrypoint.",
    )
    args: list[Argument] = Field(default_factory=list, max_length=256, description="Arguments appended to the command.")
    env: list[EnvVar] = Field(default_factory=list, max_length=256, description="Environment of the trainer container.")
    replicas: int = Field(default=1, ge=1, le=1024, description="Worker pods (nodes, in torchrun's words).")
    nproc_per_node: IntOrString = Field(
        default="auto",
        description="Training processes per worker pod; \"auto\" means one per GPU, or 1 on the CPU.",
    )
    resources: Resources = Field(default_factory=Resources, description="Resources of each worker pod.")
    template: PodTemplateOverride = Field(
        default_factory=PodTemplateOverride, description="Pod settings applied to every worker pod."
    )
    scheduling: Scheduling = Field(default_factory=Scheduling, description="How the job's pods are placed.")
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, description="Who may connect to the job's pods."
    )
    elastic: Elastic | None = Field(
        default=None,
        description="Elastic range. Without it the job is fixed-size: exactly `replicas` workers, static ranks.",
    )
    restart_policy: Literal["OnFailure", "ExitCode", "Never"] = Field(
        default="OnFailure",
        description="What a failed worker does: OnFailure recreates it; ExitCode recreates it only for "
        "retryable exit codes (128 and above, or retryableExitCodes) and fails the job otherwise; "
        "Never fails the job.",
    )
    retryable_exit_codes: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=list, max_length=64, description="Exit codes below 128 that the ExitCode policy retries."
    )
    backoff_limit: int = Field(
        default=6, ge=0, le=10000, description="Worker recreations allowed before the job is Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=MAX_DURATION_SECONDS,
        description="Seconds the job may run from its start before it is Failed."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, le=MAX_DURATION_SECONDS, description="Seconds after the job finishes before it is deleted."
    )
    clean_pod_policy: Literal["None", "Running", "All"] = Field(
        default="Running",
        description="Pods deleted once the job finishes: Running (those still running), All, or None.",
    )
    suspend: StrictBool = Field(
        default=False, description="true deletes the pods and keeps the job; false recreates them and resumes."
    )
    checkpoint: Checkpoint = Field(default_factory=Checkpoint, description="Checkpoint location and interval.")
    progress_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DURATION_SECONDS,
        description="Restart the workers when training reports no progress for this long (stall detection).",
    )
    objective: Objective | None = Field(
        default=None,
        description="The metric that says how good the model is. Unset: the built-in workload's own "
        "(accuracy, maximize, for digits), or loss, minimize.",
    )
    init: Init | None = Field(
        default=None,
        description="Start from a model on a claim (a finished job's export) instead of random weights. A "
        "restarted job resumes from its own checkpoint, not from this.",
    )
    tracking: Tracking | None = Field(
        default=None,
        description="Record the run in an MLflow tracking server: parameters, metrics by step, goodput, the "
        "model. The job never waits for it: a tracker that is down shows as Tracked=False.",
    )

    @field_validator("nproc_per_node")
    @classmethod
    def _nproc(cls, value: int | str) -> int | str:
        if isinstance(value, int) and 1 <= value <= MAX_INT_OR_STRING:
            return value
        if value == "auto":
            return value
        raise ValueError('spec.nprocPerNode must be a positive integer or "auto"')

    @field_validator("env")
    @classmethod
    def _no_reserved_env(cls, value: list[EnvVar]) -> list[EnvVar]:
        for var in value:
            if var.name.startswith(c.RESERVED_ENV_PREFIX):
                raise ValueError(f"spec.env must not set {var.name}: Ludus sets torchrun's wiring itself")
        return value

    @model_validator(mode="after")
    def _init_uri_has_a_store(self) -> TrainingJobSpec:
        if self.init is not None and self.init.uri is not None and not self.checkpoint.uri:
            raise ValueError("spec.init.uri is read with spec.checkpoint's object store (its endpoint and "
                             "secretRef): set spec.checkpoint.uri")
        return self

    @model_validator(mode="after")
    def _replicas_in_range(self) -> TrainingJobSpec:
        if self.elastic and not self.elastic.min_replicas <= self.replicas <= self.elastic.max_replicas:
            raise ValueError("spec.replicas must lie within [spec.elastic.minReplicas, spec.elastic.maxReplicas]")
        return self

    @property
    def min_replicas(self) -> int:
        return self.elastic.min_replicas if self.elastic else self.replicas

    @property
    def max_replicas(self) -> int:
        return self.elastic.max_replicas if self.elastic else self.replicas


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A Kubernetes-style condition; lastTransitionTime moves only when status flips."""

    type: str = Field(description="Condition type, e.g. Running or Failed.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word for the cause.")
    message: str = Field(default="", description="What happened, for a person.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")


class Progress(Model):
    """Training progress reported by rank 0 of the trainer."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    step: int = Field(default=0, description="Optimizer steps done.")
    total_steps: int | None = Field(default=None, description="Steps the run will take in all.")
    percent: float | None = Field(default=None, description="step / totalSteps, in percent.")
    summary: str = Field(default="", description="step/totalSteps (or the step alone), for kubectl get.")
    epoch: int = Field(default=0, description="Current epoch.")
    loss: float | None = Field(default=None, description="Latest training loss (absent when not finite).")
    samples_per_second: float | None = Field(default=None, description="Training throughput.")
    tokens_per_second: float | None = Field(default=None, description="Tokens/s, where the workload has tokens.")
    eta_seconds: float | None = Field(
        default=None, description="Seconds left, from the step rate the operator measured since this run began."
    )
    eta: str = Field(default="", description="eta_seconds for people (for example 4m10s).")
    updated_at: datetime | None = Field(default=None, description="When the operator saw the step move.")


class Badput(StatusModel):
    """Time that went into something other than training progress kept."""

    seconds: float = Field(default=0.0, description="Seconds of the job's wall time.")
    fraction: float = Field(default=0.0, description="Share of the job's wall time (0-1).")


class Goodput(StatusModel):
    """How much of the job's wall time went into training progress that was kept, and where the
    rest went. productive + every badput category = wall (fractions sum to 1)."""

    wall_seconds: float = Field(default=0.0, description="Since the job was created (to completion once finished).")
    productive_seconds: float = Field(default=0.0, description="Training steps whose progress was kept.")
    fraction: float = Field(default=0.0, description="productiveSeconds / wallSeconds (0-1): the goodput.")
    badput: dict[str, Badput] = Field(
        default_factory=dict,
        description="Badput by cause: queued (waiting for pods), startup, rendezvous, recovery (restart to "
        "pods running again), checkpointSave, checkpointRestore, evaluation, wastedProgress (steps redone "
        "x step time) and other (not accounted by the operator or the trainer).",
    )
    steps_redone: int = Field(default=0, description="Steps trained again after disruptions.")
    # Bookkeeping carried from pass to pass (and across operator restarts) in the status itself.
    queued_seconds: float | None = Field(
        default=None, description="Creation to the first trainer run's start (all workers Running, until it reports)."
    )
    recovery_seconds: float = Field(
        default=0.0, description="Restarts to the next trainer run's start (all workers Running, until it reports)."
    )
    pending_recovery_seconds: float = Field(
        default=0.0, description="The last restart's recovery until the new run reports when it started."
    )
    high_water_step: int = Field(default=0, description="The furthest step any run reached.")
    run: str = Field(default="", description="The trainer run the phases below belong to (worker 0 pod/restart/step).")
    run_phases: dict[str, float] = Field(default_factory=dict, description="The current run's seconds per phase.")
    earlier_phases: dict[str, float] = Field(default_factory=dict, description="Earlier runs' seconds per phase.")


class MetricValue(StatusModel):
    """One evaluation metric's value and when (step, epoch) it was measured."""

    value: float = Field(description="The metric's value.")
    step: int = Field(default=0, description="Optimizer step it was measured at.")
    epoch: int = Field(default=0, description="Epoch it was measured at.")


class ObjectiveValue(StatusModel):
    """The job's objective, measured."""

    metric: str = Field(description="The objective's metric.")
    goal: Literal["maximize", "minimize"] = Field(description="maximize or minimize.")
    value: float | None = Field(default=None, description="Its latest value.")
    best: float | None = Field(default=None, description="Its best value so far.")
    summary: str = Field(default="", description="For kubectl get: the metric and its latest value.")


class Evaluation(StatusModel):
    """How good the model is, as the trainer last reported it. It survives the pods: the trainer hands
    it over in its container's termination message, which the pod's status carries."""

    latest: dict[str, MetricValue] = Field(default_factory=dict, description="Each metric's latest value.")
    best: dict[str, MetricValue] = Field(default_factory=dict, description="Each metric's best value so far.")
    objective: ObjectiveValue | None = Field(default=None, description="The objective's value on its own.")
    baseline: dict[str, MetricValue] = Field(
        default_factory=dict,
        description="The model the job started from (spec.init), evaluated on this job's own data before "
        "training: a ContinuousTraining promotes a run by comparing its latest values with these.")


class InitializedFrom(StatusModel):
    """The model a job started from, pinned when its workers were created: its lineage."""

    job: str | None = Field(default=None, description="The TrainingJob it came from (init.fromJob).")
    claim_name: str | None = Field(default=None, description="The claim holding it.")
    path: str | None = Field(default=None, description="Its directory in the claim.")
    uri: str | None = Field(default=None, description="Where it is in object storage.")
    file: str | None = Field(default=None, description="The weights file the trainer loaded.")
    step: int | None = Field(default=None, description="The step it was saved at.")
    sha256: str | None = Field(default=None, description="Its weights' SHA-256, as the trainer read them.")
    reinitialized: list[str] | None = Field(default=None, description="Tensors that did not fit and were "
                                            "initialised afresh (init.strict: false), such as a new head.")


class CheckpointStatus(StatusModel):
    """The newest complete checkpoint: where the job resumes from. The location is the operator's own
    (the spec's URI or claim and the step), never a string a pod reported."""

    step: int = Field(ge=0, description="The optimizer step it was saved at.")
    uri: str | None = Field(default=None, max_length=1100, description="Where it is in object storage "
                            "(checkpoint.uri); committed, so complete.")
    claim_name: str | None = Field(default=None, max_length=253, description="The claim it is on (checkpoint."
                                   "claimName).")
    path: str | None = Field(default=None, max_length=1100, description="Its file in the claim, as mounted.")
    size_bytes: int | None = Field(default=None, ge=0, description="Its size, every shard together.")
    time: datetime | None = Field(default=None, description="When it was completed.")


class TrackingStatus(StatusModel):
    """The job's run in the experiment tracker. The IDs are checked for MLflow's shapes; the URL is built from
    the spec's URI, never taken from a pod."""

    run_id: str = Field(max_length=64, pattern=r"^[0-9a-f]{32}$", description="MLflow's run ID.")
    experiment_id: str = Field(max_length=32, pattern=r"^[0-9]{1,19}$", description="MLflow's experiment ID.")
    url: str = Field(max_length=700, description="The run in MLflow's UI.")


class RestartRecord(StatusModel):
    """The most recent restart, kept after the Restarting condition has turned False again."""

    reason: str = Field(description="Why: WorkerFailed, WorkerDeleted, WorkerEvicted, NodeLost or Stalled.")
    message: str = Field(default="", description="What happened, for a person.")
    time: datetime | None = Field(default=None, description="When the operator decided the restart.")


class TrainingJobStatus(StatusModel):
    """What the operator observed; it never holds anything the pods do not show."""

    phase: Literal["Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed"] = Field(
        default="Pending", description="Where the job is: Pending, Running, Restarting, Suspended, Succeeded, Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Conditions, one per type.")
    desired: int = Field(default=0, description="Workers the job wants now.")
    active: int = Field(default=0, description="Worker pods that exist and have not finished.")
    ready: int = Field(default=0, description="Worker pods running and ready.")
    succeeded: int = Field(default=0, description="Worker pods that exited 0.")
    failed: int = Field(default=0, description="Worker pods that failed and are not yet replaced.")
    workers: str = Field(default="0/0", description="Running or done (exit 0)/desired workers.")
    restarts: int = Field(default=0, description="Worker recreations so far; counted against backoffLimit.")
    last_restart: RestartRecord | None = Field(default=None, description="The most recent restart and its cause.")
    counted_failures: list[str] = Field(
        default_factory=list,
        description="UIDs of failed pods already counted in restarts and not yet gone (exactly-once counting).",
    )
    selector: str = Field(default="", description="Label selector of the worker pods (for the scale subresource).")
    start_time: datetime | None = Field(default=None, description="When the operator first created workers.")
    completion_time: datetime | None = Field(default=None, description="When the job Succeeded or Failed.")
    observed_generation: int = Field(default=0, description="The spec generation this status reflects.")
    progress: Progress | None = Field(default=None, description="Latest training progress from rank 0.")
    evaluation: Evaluation | None = Field(default=None, description="The model's evaluation metrics.")
    goodput: Goodput | None = Field(default=None, description="Where the job's wall time went.")
    checkpoint: CheckpointStatus | None = Field(default=None, description="The newest complete checkpoint: "
                                                "step, where, size and when.")
    initialized_from: InitializedFrom | None = Field(
        default=None, description="The model the job started from (spec.init), as resolved and as loaded.")
    tracking: TrackingStatus | None = Field(default=None, description="The job's run in the experiment tracker "
                                            "(spec.tracking): its IDs and address.")


class ObjectMeta(BaseModel):
    """The slice of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel, frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class TrainingJob(BaseModel):
    """A whole TrainingJob as the API server stores it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    api_version: str = Field(default=c.API_VERSION, alias="apiVersion")
    kind: str = c.KIND
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: TrainingJobStatus = Field(default_factory=TrainingJobStatus)

    @model_validator(mode="before")
    @classmethod
    def _tolerate_empty_status(cls, data: Any) -> Any:
        # A fresh object has no status, and Kopf can leave keys we do not own in it.
        if isinstance(data, dict) and isinstance(data.get("status"), dict):
            known = set(TrainingJobStatus.model_fields) | {
                f.alias for f in TrainingJobStatus.model_fields.values() if f.alias
            }
            data = {**data, "status": {k: v for k, v in data["status"].items() if k in known}}
        return data


StatusT = TypeVar("StatusT", bound=BaseModel)
StoredT = TypeVar("StoredT", bound=BaseModel)


def read_status(raw: Any, model: type[StatusT]) -> StatusT:
    """A stored status, as much of it as this version can read: a field another operator version wrote in
    a shape this one does not know is left out, not the whole status (a restart count is never lost)."""
    if not isinstance(raw, dict):
        return model()
    try:
        return model.model_validate(raw)
    except ValidationError:
        pass
    readable = {}
    for key, value in raw.items():
        try:
            model.model_validate({key: value})
        except ValidationError:
            continue
        readable[key] = value
    return model.model_validate(readable)


def parse_stored(model: type[StoredT], body: Any) -> StoredT:
    """A stored object (TrainingJob, Sweep, ContinuousTraining). Raises ValidationError only for its
    spec: a status this version cannot read in full is read in part (`read_status`)."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        if any(e["loc"][:1] != ("status",) for e in err.errors()):
            raise
    status_model = model.model_fields["status"].annotation
    assert isinstance(status_model, type) and issubclass(status_model, BaseModel)
    status = read_status(body.get("status"), status_model)
    return model.model_validate({**body, "status": status.model_dump(by_alias=True, exclude_none=True)})


def parse_job(body: Any) -> TrainingJob:
    return parse_stored(TrainingJob, body)
