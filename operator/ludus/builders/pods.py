"""Worker pods and the rendezvous store pod of a TrainingJob.

Pods meet the restricted Pod Security Standard by default: non-root,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp.
"""

from __future__ import annotations

from typing import Any

from ludus.api import constants as c
from ludus.api import names
from ludus.api.models import Checkpoint, Tracking, TrainingJob
from ludus.builders import labels
from ludus.builders.podgroup import gang_fields, worker_gang_fields
from ludus.frameworks import torch


def _quantity(value: int | str) -> str:
    return str(value)


def pod_security_context(job: TrainingJob) -> dict[str, Any]:
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if job.spec.template.run_as_user is not None:
        context["runAsUser"] = job.spec.template.run_as_user
        context["runAsGroup"] = job.spec.template.run_as_user
        context["fsGroup"] = job.spec.template.run_as_user
    return context


CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
# Where Python, torch and the libraries they load keep caches, now that only /tmp is writable.
CACHE_ENV: tuple[dict[str, str], ...] = (
    {"name": "XDG_CACHE_HOME", "value": f"{c.TMP_MOUNT}/.cache"},
    {"name": "TORCH_HOME", "value": f"{c.TMP_MOUNT}/.cache/torch"},
    {"name": "TRITON_CACHE_DIR", "value": f"{c.TMP_MOUNT}/.cache/triton"},
    {"name": "MPLCONFIGDIR", "value": f"{c.TMP_MOUNT}/.cache/matplotlib"},
)
TMP_VOLUME: dict[str, Any] = {"name": c.VOLUME_TMP, "emptyDir": {}}
TMP_VOLUME_MOUNT: dict[str, Any] = {"name": c.VOLUME_TMP, "mountPath": c.TMP_MOUNT}


def container_security_context(job: TrainingJob) -> dict[str, Any]:
    """Least privilege; the root file system stays writable only where the template asks for it."""
    return {**CONTAINER_SECURITY_CONTEXT, "readOnlyRootFilesystem": job.spec.template.read_only_root_filesystem}


def relaxed_security(job: TrainingJob) -> str | None:
    """What the job's template turns back on of what Ludus locks down, if anything (worth an Event)."""
    t = job.spec.template
    relaxed = [*(["the ServiceAccount token is mounted (template.automountServiceAccountToken)"]
                 if t.automount_service_account_token else []),
               *(["the root file system is writable (template.readOnlyRootFilesystem: false)"]
                 if not t.read_only_root_filesystem else [])]
    return "; ".join(relaxed) if relaxed else None


def worker_resources(job: TrainingJob) -> dict[str, Any]:
    res = job.spec.resources
    requests: dict[str, str] = {"cpu": _quantity(res.cpu), "memory": _quantity(res.memory)}
    limits: dict[str, str] = {"memory": _quantity(res.memory)}
    if res.gpus:
        requests[c.EXTENDED_RESOURCE_GPU] = str(res.gpus)
        limits[c.EXTENDED_RESOURCE_GPU] = str(res.gpus)
    return {"requests": requests, "limits": limits}


def _scheduling(job: TrainingJob) -> dict[str, Any]:
    """Placement fields shared by the workers and the store, so both land where the user wants."""
    t = job.spec.template
    spec: dict[str, Any] = {}
    if t.node_selector:
        spec["nodeSelector"] = dict(t.node_selector)
    if t.tolerations:
        spec["tolerations"] = list(t.tolerations)
    if t.affinity:
        spec["affinity"] = dict(t.affinity)
    if t.topology_spread_constraints:
        spec["topologySpreadConstraints"] = list(t.topology_spread_constraints)
    if t.priority_class_name:
        spec["priorityClassName"] = t.priority_class_name
    if t.scheduler_name:
        spec["schedulerName"] = t.scheduler_name
    if t.service_account_name:
        spec["serviceAccountName"] = t.service_account_name
    return spec


def checkpoint_dir(job: TrainingJob) -> str:
    """Where the trainer keeps checkpoints: the mount, or a directory in the claim (`subPath`) that the
    trainer creates itself (a kubelet-made subPath directory would be root's, not the trainer's)."""
    ckpt = job.spec.checkpoint
    return f"{ckpt.path.rstrip('/')}/{ckpt.sub_path}" if ckpt.claim_name and ckpt.sub_path else ckpt.path


def object_storage_env(job: TrainingJob) -> list[dict[str, Any]]:
    """Where the checkpoints go in object storage and how to reach it: the credentials by reference to the
    job's Secret (the kubelet reads it; the operator never does), only under the documented keys."""
    return store_env(job.spec.checkpoint)


def store_env(ckpt: Checkpoint) -> list[dict[str, Any]]:
    """A checkpoint spec's object store as environment: the URI, the endpoint, the region, the keys."""
    if not ckpt.uri:
        return []
    env: list[dict[str, Any]] = [{"name": c.ENV_CHECKPOINT_URI, "value": ckpt.uri.rstrip("/")}]
    if ckpt.endpoint:
        env.append({"name": c.ENV_S3_ENDPOINT, "value": ckpt.endpoint.rstrip("/")})
    if ckpt.region:
        env.append({"name": "AWS_REGION", "value": ckpt.region})
    if ckpt.secret_ref:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": ckpt.secret_ref.name, "key": key}}}
                for key in c.S3_CREDENTIAL_KEYS]
    return env


def store_check_containers(job: TrainingJob) -> list[dict[str, Any]]:
    """With object storage, an init container that lists the bucket and writes a probe with the job's keys
    before the trainer starts: a missing bucket, refused keys or an endpoint nobody answers at end the
    job with a condition naming the cause (its termination message), not a worker crash-looping on its
    first save. It imports no torch, so it costs a pod about a second."""
    if not job.spec.checkpoint.uri:
        return []
    return [{
        "name": c.CONTAINER_STORE_CHECK,
        "image": job.spec.image,
        "imagePullPolicy": job.spec.image_pull_policy,
        "command": list(c.STORE_CHECK_COMMAND),
        "env": [*object_storage_env(job), {"name": "PYTHONUNBUFFERED", "value": "1"}, *CACHE_ENV,
                *(e.model_dump(by_alias=True, exclude_none=True) for e in job.spec.env)],  # a CA bundle, a proxy
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [dict(TMP_VOLUME_MOUNT)],
        "securityContext": container_security_context(job),
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }]


def _init_env(job: TrainingJob) -> list[dict[str, Any]]:
    """The model to start from: a path on the mounted claim, or its object-storage URI (read with the
    checkpoint store's endpoint and keys). fromJob is resolved to one of them before the pods are built."""
    init = job.spec.init
    if init is None or not (init.claim_name or init.uri):
        return []
    source = init.uri.rstrip("/") if init.uri else f"{c.INIT_MOUNT}/{init.path}"
    return [{"name": c.ENV_INIT_FROM, "value": source},
            {"name": c.ENV_INIT_STRICT, "value": "true" if init.strict else "false"},
            {"name": c.ENV_INIT_FREEZE, "value": ",".join(init.freeze)}]


def registered_model_name(namespace: str, continuous_training: str) -> str:
    """The MLflow registered model a ContinuousTraining's runs are versions of (namespaced: one server may serve
    many teams)."""
    return f"{namespace}.{continuous_training}"


def tracker_access(tracking: Tracking) -> list[dict[str, Any]]:
    """Where the tracker is, and its credentials by reference (optional keys: a Secret may hold a token or a
    user and password); the operator never reads the Secret."""
    env: list[dict[str, Any]] = [{"name": c.ENV_TRACKING_URI, "value": (tracking.uri or "").rstrip("/")}]
    if tracking.secret_ref is not None:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": tracking.secret_ref.name, "key": key,
                                                             "optional": True}}}
                for key in c.TRACKING_CREDENTIAL_KEYS]
    return env


def tracking_env(job: TrainingJob) -> list[dict[str, Any]]:
    """The experiment tracker: its access, the experiment, the run's identity (the job's UID), a Sweep trial's
    parent run and a ContinuousTraining run's registered model."""
    tracking = job.spec.tracking
    if tracking is None or tracking.uri is None:
        return []
    meta = job.metadata
    sweep, continuous = meta.labels.get(c.LABEL_SWEEP), meta.labels.get(c.LABEL_CT)
    return [
        *tracker_access(tracking),
        {"name": c.ENV_TRACKING_EXPERIMENT, "value": tracking.experiment or meta.namespace},
        {"name": c.ENV_JOB_UID, "value": meta.uid or f"{meta.namespace}/{meta.name}"},
        {"name": c.ENV_IMAGE, "value": job.spec.image},
        *([{"name": c.ENV_TRACKING_PARENT, "value": f"Sweep:{meta.namespace}/{sweep}"}] if sweep else []),
        *([{"name": c.ENV_TRACKING_REGISTERED_MODEL, "value": registered_model_name(meta.namespace, continuous)}]
          if continuous else []),
    ]


def _ludus_env(job: TrainingJob, index: int) -> list[dict[str, Any]]:
    return [
        {"name": c.ENV_JOB_NAME, "value": job.metadata.name},
        {"name": c.ENV_JOB_NAMESPACE, "value": job.metadata.namespace},
        {"name": c.ENV_REPLICA_INDEX, "value": str(index)},
        {"name": c.ENV_CHECKPOINT_DIR, "value": checkpoint_dir(job)},
        {"name": c.ENV_CHECKPOINT_INTERVAL, "value": str(job.spec.checkpoint.interval_steps)},
        *object_storage_env(job),
        {"name": c.ENV_METRICS_PORT, "value": str(c.TRAINER_METRICS_PORT)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *(
            [{"name": c.ENV_OBJECTIVE, "value": f"{job.spec.objective.metric}:{job.spec.objective.goal}"}]
            if job.spec.objective
            else []
        ),
        *_init_env(job),
        *tracking_env(job),
    ]


def _volumes(job: TrainingJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": c.VOLUME_SHM,
            "emptyDir": {"medium": "Memory", "sizeLimit": _quantity(job.spec.resources.shared_memory)},
        }
    ]
    mounts: list[dict[str, Any]] = [{"name": c.VOLUME_SHM, "mountPath": "/dev/shm"}]
    volumes.append(dict(TMP_VOLUME))
    mounts.append(dict(TMP_VOLUME_MOUNT))
    ckpt = job.spec.checkpoint
    if ckpt.claim_name:
        volumes.append({"name": c.VOLUME_CHECKPOINT, "persistentVolumeClaim": {"claimName": ckpt.claim_name}})
    else:
        volumes.append({"name": c.VOLUME_CHECKPOINT, "emptyDir": {}})
    mounts.append({"name": c.VOLUME_CHECKPOINT, "mountPath": ckpt.path})
    if job.spec.init and job.spec.init.claim_name:  # the model's claim, read-only: a job never changes its parent's
        init_volume = c.VOLUME_INIT
        if job.spec.init.claim_name == ckpt.claim_name:
            init_volume = c.VOLUME_CHECKPOINT  # the same claim: one volume, mounted twice
        else:
            volumes.append({"name": c.VOLUME_INIT,
                            "persistentVolumeClaim": {"claimName": job.spec.init.claim_name, "readOnly": True}})
        mounts.append({"name": init_volume, "mountPath": c.INIT_MOUNT, "readOnly": True})
    volumes.extend(job.spec.template.volumes)
    mounts.extend(job.spec.template.volume_mounts)
    return volumes, mounts


def build_worker_pod(job: TrainingJob, index: int, gang: str = "none") -> dict[str, Any]:
    """Worker `index`: torchrun in front of the user's command, wired by PET_* variables."""
    name = names.worker_pod_name(job, index)
    volumes, mounts = _volumes(job)
    user_env = [e.model_dump(by_alias=True, exclude_none=True) for e in job.spec.env]
    container: dict[str, Any] = {
        "name": c.CONTAINER_TRAINER,
        "image": job.spec.image,
        "imagePullPolicy": job.spec.image_pull_policy,
        "command": torch.worker_command(job),
        "env": [*torch.torchrun_env(job, index), *_ludus_env(job, index), *CACHE_ENV, *user_env],
        "resources": worker_resources(job),
        "ports": [
            {"name": "metrics", "containerPort": c.TRAINER_METRICS_PORT},
        ],
        "volumeMounts": mounts,
        "securityContext": container_security_context(job),
        # The trainer leaves its evaluation here; the kubelet copies it into the pod's status.
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }
    if job.spec.args:
        container["args"] = list(job.spec.args)
    gang_labels, gang_annotations, gang_scheduler = worker_gang_fields(job, gang)
    meta = labels.child_metadata(
        job, name, {**job.spec.template.labels, **gang_labels, **labels.child_labels(job, c.ROLE_WORKER, index)}
    )
    if job.spec.template.annotations or gang_annotations:
        meta["annotations"] = {**job.spec.template.annotations, **gang_annotations}
    scheduling = _scheduling(job)
    if gang_scheduler and "schedulerName" not in scheduling:
        scheduling["schedulerName"] = gang_scheduler
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "hostname": name,
            "subdomain": names.service_name(job),
            "enableServiceLinks": False,
            "automountServiceAccountToken": job.spec.template.automount_service_account_token,
            "terminationGracePeriodSeconds": 30,
            "securityContext": pod_security_context(job),
            **({"initContainers": checks} if (checks := store_check_containers(job)) else {}),
            "containers": [container],
            "volumes": volumes,
            **scheduling,
        },
    }


def build_rendezvous_pod(job: TrainingJob, gang: str = "none") -> dict[str, Any]:
    """The c10d TCPStore the workers meet at; small, and independent of every worker. With a gang
    scheduler it is one of the gang: workers placed without their store could not start."""
    name = names.rendezvous_pod_name(job)
    gang_labels, gang_annotations, gang_scheduler = gang_fields(job, gang)
    meta = labels.child_metadata(job, name, {**gang_labels, **labels.child_labels(job, c.ROLE_RENDEZVOUS)})
    if gang_annotations:
        meta["annotations"] = gang_annotations
    # The store is one small pod: the workers' spread is not its to follow.
    workers_only = ("serviceAccountName", "topologySpreadConstraints")
    scheduling = {k: v for k, v in _scheduling(job).items() if k not in workers_only}
    if gang_scheduler and "schedulerName" not in scheduling:
        scheduling["schedulerName"] = gang_scheduler
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Always",
            "hostname": name,
            "subdomain": names.service_name(job),
            "enableServiceLinks": False,
            "automountServiceAccountToken": job.spec.template.automount_service_account_token,
            "terminationGracePeriodSeconds": 5,
            "securityContext": pod_security_context(job),
            "containers": [
                {
                    "name": c.CONTAINER_RENDEZVOUS,
                    "image": job.spec.image,
                    "imagePullPolicy": job.spec.image_pull_policy,
                    "command": torch.store_command(),
                    "ports": [{"name": "rendezvous", "containerPort": c.RENDEZVOUS_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": c.RENDEZVOUS_PORT}, "periodSeconds": 2},
                    "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                    "securityContext": container_security_context(job),
                    "volumeMounts": [dict(TMP_VOLUME_MOUNT)],
                }
            ],
            "volumes": [dict(TMP_VOLUME)],
            **scheduling,
        },
    }
