"""Worker and rendezvous pods: whole manifests, the torchrun wiring, restricted security."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from ludus.api import constants as c
from ludus.builders.pods import build_rendezvous_pod, build_worker_pod
from tests.factories import make_job

OWNER = {
    "apiVersion": "ludus.dev/v1alpha1",
    "kind": "TrainingJob",
    "name": "digits",
    "uid": "uid-digits",
    "controller": True,
    "blockOwnerDeletion": True,
}


def test_worker_pod_whole_manifest_for_a_two_worker_elastic_job() -> None:
    job = make_job().workers(2).nproc(2).elastic(1, 4, 10).build()
    assert build_worker_pod(job, 1) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "digits-worker-1",
            "namespace": "team-a",
            "labels": {
                "ludus.dev/job-name": "digits",
                "ludus.dev/role": "worker",
                "app.kubernetes.io/managed-by": "ludus-operator",
                "ludus.dev/replica-index": "1",
            },
            "ownerReferences": [OWNER],
        },
        "spec": {
            "restartPolicy": "Never",
            "hostname": "digits-worker-1",
            "subdomain": "digits",
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 30,
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 1000,
            },
            "containers": [
                {
                    "name": "trainer",
                    "image": "ludus-trainer:test",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-m", "ludus_trainer.launch"],
                    "env": [
                        {"name": "PET_NNODES", "value": "1:4"},
                        {"name": "PET_NPROC_PER_NODE", "value": "2"},
                        {"name": "PET_RDZV_BACKEND", "value": "c10d"},
                        {"name": "PET_RDZV_ENDPOINT", "value": "digits-rdzv.digits.team-a.svc:29400"},
                        {"name": "PET_RDZV_ID", "value": "uid-digits"},
                        {"name": "PET_RDZV_CONF", "value": "join_timeout=900,last_call_timeout=5"},
                        {"name": "PET_MAX_RESTARTS", "value": "10"},
                        {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"},
                        {"name": "LUDUS_JOB_NAME", "value": "digits"},
                        {"name": "LUDUS_JOB_NAMESPACE", "value": "team-a"},
                        {"name": "LUDUS_REPLICA_INDEX", "value": "1"},
                        {"name": "LUDUS_CHECKPOINT_DIR", "value": "/checkpoints"},
                        {"name": "LUDUS_CHECKPOINT_INTERVAL", "value": "100"},
                        {"name": "LUDUS_METRICS_PORT", "value": "9090"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"},
                        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
                        {"name": "TORCH_HOME", "value": "/tmp/.cache/torch"},
                        {"name": "TRITON_CACHE_DIR", "value": "/tmp/.cache/triton"},
                        {"name": "MPLCONFIGDIR", "value": "/tmp/.cache/matplotlib"},
                    ],
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "volumeMounts": [
                        {"name": "dshm", "mountPath": "/dev/shm"},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "checkpoint", "mountPath": "/checkpoints"},
                    ],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "readOnlyRootFilesystem": True},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "checkpoint", "emptyDir": {}},
            ],
        },
    }


def _env(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


def test_fixed_size_jobs_get_static_node_ranks() -> None:
    job = make_job().workers(3).build()
    envs = [_env(build_worker_pod(job, i)) for i in range(3)]
    assert [e["PET_NODE_RANK"] for e in envs] == ["0", "1", "2"]
    assert envs[0]["PET_NNODES"] == "3:3"


def test_elastic_jobs_leave_node_rank_to_the_rendezvous() -> None:
    job = make_job().workers(2).elastic(1, 4).build()
    assert "PET_NODE_RANK" not in _env(build_worker_pod(job, 0))


def test_gpus_become_nvidia_requests_and_limits_and_auto_nproc() -> None:
    job = make_job().gpus(8).build()
    pod = build_worker_pod(job, 0)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"][c.EXTENDED_RESOURCE_GPU] == "8"
    assert resources["limits"][c.EXTENDED_RESOURCE_GPU] == "8"
    assert _env(pod)["PET_NPROC_PER_NODE"] == "8"


def test_auto_nproc_on_cpu_is_one_process() -> None:
    assert _env(build_worker_pod(make_job().build(), 0))["PET_NPROC_PER_NODE"] == "1"


def test_checkpoints_in_object_storage_mount_nothing_and_take_the_credentials_by_reference() -> None:
    job = make_job().spec(checkpoint={"uri": "s3://ckpts/team-a/run/", "secretRef": {"name": "s3-creds"},
                                      "endpoint": "http://10.0.0.5:8333", "region": "eu-west-1"}).build()
    pod = build_worker_pod(job, 0)
    env, container = _env(pod), pod["spec"]["containers"][0]
    assert env["LUDUS_CHECKPOINT_URI"] == "s3://ckpts/team-a/run" and env["LUDUS_S3_ENDPOINT"] == "http://10.0.0.5:8333"
    assert env["AWS_REGION"] == "eu-west-1"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert {"name": key, "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": key}}} in container["env"]
    assert not any(v.get("persistentVolumeClaim") for v in pod["spec"]["volumes"])  # no node to be pinned to
    plain = _env(build_worker_pod(make_job().build(), 0))
    assert "LUDUS_CHECKPOINT_URI" not in plain and "AWS_ACCESS_KEY_ID" not in plain


def test_object_storage_is_checked_before_the_trainer_starts() -> None:
    """An init container with the trainer's image, the store's settings and keys by reference, its own
    termination message and the job's security context; none without object storage."""
    job = make_job().spec(checkpoint={"uri": "s3://ckpts/run", "secretRef": {"name": "s3-creds"}},
                          env=[{"name": "AWS_CA_BUNDLE", "value": "/etc/ca.pem"}]).build()
    pod = build_worker_pod(job, 0)
    (check,) = pod["spec"]["initContainers"]
    trainer = pod["spec"]["containers"][0]
    assert check["name"] == c.CONTAINER_STORE_CHECK and check["image"] == trainer["image"]
    assert check["command"] == ["python", "-m", "ludus_trainer.storecheck"]
    env = {e["name"]: e for e in check["env"]}
    assert env["LUDUS_CHECKPOINT_URI"]["value"] == "s3://ckpts/run" and env["AWS_CA_BUNDLE"]["value"] == "/etc/ca.pem"
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}}}
    assert check["securityContext"] == trainer["securityContext"]
    assert check["terminationMessagePath"] == c.TERMINATION_MESSAGE_PATH
    assert "initContainers" not in build_worker_pod(make_job().build(), 0)["spec"]


@pytest.mark.parametrize(("checkpoint", "message"), [
    ({"claimName": "c", "uri": "s3://ckpts/x"}, "claimName (a volume) or uri (object storage), not both"),
    ({"secretRef": {"name": "s"}}, "are for object storage: set checkpoint.uri"),
    ({"uri": "s3://ckpts/a/../b"}, "must not contain . or .. segments"),
    ({"uri": "s3://ckpts/a/./b"}, "must not contain . or .. segments"),
    ({"uri": "https://ckpts/a"}, "String should match pattern"),
    ({"uri": "s3://x/a"}, "String should match pattern"),  # no bucket name is one character
])
def test_object_storage_settings_are_refused_where_they_cannot_work(checkpoint: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        make_job().spec(checkpoint=checkpoint).build()


def test_tracking_reaches_the_trainer_with_credentials_by_reference_and_a_trials_parent() -> None:
    job = make_job().spec(tracking={"uri": "https://mlflow.example.com/team/", "secretRef": {"name": "mlflow"}})
    job._body["metadata"]["labels"] = {c.LABEL_SWEEP: "search"}
    env = {e["name"]: e for e in build_worker_pod(job.build(), 0)["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example.com/team"
    assert env["LUDUS_TRACKING_EXPERIMENT"]["value"] == "team-a"  # the namespace, unless the spec names one
    assert env["LUDUS_JOB_UID"]["value"] == "uid-digits" and env["LUDUS_IMAGE"]["value"] == "ludus-trainer:test"
    assert env["LUDUS_TRACKING_PARENT"]["value"] == "Sweep:team-a/search"
    for key in c.TRACKING_CREDENTIAL_KEYS:
        assert env[key]["valueFrom"] == {"secretKeyRef": {"name": "mlflow", "key": key, "optional": True}}
    plain = {e["name"] for e in build_worker_pod(make_job().build(), 0)["spec"]["containers"][0]["env"]}
    assert not plain & {"MLFLOW_TRACKING_URI", "LUDUS_TRACKING_PARENT", *c.TRACKING_CREDENTIAL_KEYS}


@pytest.mark.parametrize(("tracking", "message"), [
    ({"uri": "http://user:pw@mlflow:5000"}, "String should match pattern"),  # credentials go in secretRef
    ({"uri": "file:///etc/passwd"}, "String should match pattern"),
    ({"uri": "http://mlflow:5000/?x=1"}, "String should match pattern"),
    ({"uri": "http://mlflow:5000", "experiment": "a\nb"}, "String should match pattern"),
    ({"uri": "http://mlflow:5000", "experiment": "x" * 257}, "at most 256 characters"),
])
def test_tracking_settings_that_cannot_work_are_refused(tracking: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        make_job().spec(tracking=tracking).build()


def test_user_env_args_template_and_checkpoint_claim_are_applied() -> None:
    job = (
        make_job()
        .spec(
            env=[
                {"name": "LR", "value": "0.1"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            args=["--epochs", "3"],
            checkpoint={"claimName": "ckpt", "path": "/ckpt", "intervalSteps": 5},
            template={
                "nodeSelector": {"pool": "a100"},
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
                "labels": {"team": "vision"},
                "annotations": {"note": "x"},
                "schedulerName": "volcano",
                "priorityClassName": "high",
                "serviceAccountName": "trainer",
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
        )
        .build()
    )
    pod = build_worker_pod(job, 0)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert container["args"] == ["--epochs", "3"]
    assert {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}} in container["env"]
    assert _env(pod)["LR"] == "0.1" and _env(pod)["LUDUS_CHECKPOINT_DIR"] == "/ckpt"
    assert {"name": "checkpoint", "persistentVolumeClaim": {"claimName": "ckpt"}} in spec["volumes"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert spec["nodeSelector"] == {"pool": "a100"} and spec["schedulerName"] == "volcano"
    assert spec["priorityClassName"] == "high" and spec["serviceAccountName"] == "trainer"
    assert pod["metadata"]["labels"]["team"] == "vision" and pod["metadata"]["annotations"] == {"note": "x"}


def test_our_labels_win_over_template_labels() -> None:
    job = make_job().spec(template={"labels": {"ludus.dev/job-name": "spoof"}}).build()
    assert build_worker_pod(job, 0)["metadata"]["labels"]["ludus.dev/job-name"] == "digits"


def test_rendezvous_pod_hosts_the_store_apart_from_the_workers() -> None:
    job = make_job().workers(2).spec(template={"nodeSelector": {"pool": "cpu"}, "serviceAccountName": "sa"}).build()
    pod = build_rendezvous_pod(job)
    assert pod["metadata"]["name"] == "digits-rdzv"
    assert pod["metadata"]["labels"]["ludus.dev/role"] == "rendezvous"
    assert pod["spec"]["hostname"] == "digits-rdzv" and pod["spec"]["subdomain"] == "digits"
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert "serviceAccountName" not in pod["spec"]
    container = pod["spec"]["containers"][0]
    assert container["command"][:2] == ["python3", "-c"] and "TCPStore" in container["command"][2]
    assert container["readinessProbe"]["tcpSocket"]["port"] == 29400
    assert pod["metadata"]["ownerReferences"] == [OWNER]


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    job = make_job().build()
    for pod in (build_worker_pod(job, 0), build_rendezvous_pod(job)):
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for volume in pod["spec"].get("volumes", []):
            assert "hostPath" not in volume


def test_a_declared_objective_reaches_the_trainer() -> None:
    job = make_job().spec(objective={"metric": "f1", "goal": "maximize"}).build()
    env = {e["name"]: e.get("value") for e in build_worker_pod(job, 0)["spec"]["containers"][0]["env"]}
    assert env["LUDUS_OBJECTIVE"] == "f1:maximize"
    default = build_worker_pod(make_job().build(), 0)["spec"]["containers"][0]["env"]
    assert "LUDUS_OBJECTIVE" not in {e["name"] for e in default}


def test_a_spread_constraint_reaches_the_workers_and_not_the_store() -> None:
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"ludus.dev/job-name": "digits", "ludus.dev/role": "worker"}}}]
    job = make_job().workers(2).spec(template={"topologySpreadConstraints": spread}).build()
    assert build_worker_pod(job, 1)["spec"]["topologySpreadConstraints"] == spread
    assert "topologySpreadConstraints" not in build_rendezvous_pod(job)["spec"]


def test_pods_have_no_api_token_and_a_read_only_root_with_tmp_writable() -> None:
    job = make_job().workers(1).build()
    for pod in (build_worker_pod(job, 0), build_rendezvous_pod(job)):
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": c.VOLUME_TMP, "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": c.VOLUME_TMP, "emptyDir": {}} in spec["volumes"]
    env = {e["name"]: e.get("value") for e in build_worker_pod(job, 0)["spec"]["containers"][0]["env"]}
    assert env["XDG_CACHE_HOME"].startswith("/tmp/") and env["TORCH_HOME"].startswith("/tmp/")


def test_a_template_may_turn_the_token_and_a_writable_root_back_on_and_is_told_once() -> None:
    from ludus.trainingjob.reconcile import reconcile
    from tests.factories import T0

    job = make_job().workers(1).spec(template={"automountServiceAccountToken": True,
                                               "readOnlyRootFilesystem": False}).build()
    worker = build_worker_pod(job, 0)["spec"]
    assert worker["automountServiceAccountToken"] is True
    assert worker["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    plan = reconcile(job, [], T0)
    notes = [e for e in plan.events if e.reason == c.REASON_SECURITY_RELAXED]
    assert len(notes) == 1 and "token" in notes[0].message and "writable" in notes[0].message
