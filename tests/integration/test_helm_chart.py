"""The Helm chart against real software: the pinned helm, the real API server, the chart's own RBAC."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO, binary
from ludus.builders.netpol import namespace_qualified
from ludus.settings import DEFAULTS
from tests.factories import make_job
from tests.fixtures import TestCluster

CHART = REPO / "charts" / "ludus"
VALUE_SETS = {
    "defaults": [],
    "namespaced with leader election": ["--set", "watchNamespaces={NS}", "--set", "replicas=2",
                                        "--set", "leaderElection.enabled=true", "--set", "logLevel=debug",
                                        "--set", "tracking.uri=http://mlflow.mlflow.svc:5000"],
}


def helm(cluster: TestCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(binary("helm")), *args], text=True, capture_output=True, timeout=180,
                            env={**os.environ, "KUBECONFIG": cluster.kubeconfig, "HELM_CACHE_HOME": "/tmp/helm-cache",
                                 "HELM_CONFIG_HOME": "/tmp/helm-config", "HELM_DATA_HOME": "/tmp/helm-data"})
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}")
    return result


def _values(name: str, namespace: str) -> list[str]:
    return [v.replace("{NS}", "{" + namespace + "}") for v in VALUE_SETS[name]]


@pytest.mark.parametrize("values", list(VALUE_SETS), ids=list(VALUE_SETS))
def test_lint_template_and_server_side_dry_run(cluster: TestCluster, k: Kubectl, namespace: str, values: str) -> None:
    lint = helm(cluster, "lint", str(CHART), *_values(values, namespace))
    assert "0 chart(s) failed" in lint.stdout
    rendered = helm(cluster, "template", "ludus", str(CHART), "--namespace", namespace, "--kube-version", "1.33.13",
                    *_values(values, namespace)).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "ServiceAccount", "Service", "ClusterRole"} <= kinds
    if "leader" in values:
        assert kinds & {"KopfPeering", "ClusterKopfPeering"}, "replicas need the peering object to elect one"
        # helm install puts the chart's crds/ first; a dry run of the templates needs them already there.
        cluster.kubectl.run("apply", "-f", str(CHART / "crds" / "kopfpeerings.kopf.dev.yaml"))
        cluster.kubectl.run("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev",
                            "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s")
    accepted = k.run("apply", "--dry-run=server", "-f", "-", input=rendered)
    assert "(server dry run)" in accepted.stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    flags = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--tracking-uri=http://mlflow.mlflow.svc:5000" in flags) == ("leader" in values), flags


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--set", "replicas=2"], "leaderElection"), (["--set", "logLevel=loud"], "logLevel"),
     (["--set", "metrics.port=0"], "metrics/port"), (["--set", "surprise=1"], "surprise"),
     (["--set", "tracking.uri=http://user:pw@mlflow:5000"], "tracking/uri")],
    ids=["two replicas need leader election", "unknown log level", "port out of range", "unknown value",
         "credentials in the tracking uri"],
)
def test_bad_values_are_refused_by_the_schema(cluster: TestCluster, namespace: str, flags: list[str],
                                              message: str) -> None:
    result = helm(cluster, "install", "bad", str(CHART), "--namespace", namespace, *flags, check=False)
    assert result.returncode != 0 and "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_install_and_uninstall(cluster: TestCluster, k: Kubectl, namespace: str) -> None:
    helm(cluster, "install", "ludus", str(CHART), "--namespace", namespace, "--set", f"watchNamespaces={{{namespace}}}")
    deployment = k.json("deployment", "ludus-operator")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "ludus-operator"
    assert k.get_or_none("role", "ludus-operator") is not None
    notes = helm(cluster, "get", "notes", "ludus", "--namespace", namespace).stdout
    assert f"handles TrainingJobs in {namespace}" in notes
    helm(cluster, "uninstall", "ludus", "--namespace", namespace, "--wait")
    assert k.get_or_none("deployment", "ludus-operator") is None
    assert k.get_or_none("role", "ludus-operator") is None
    assert cluster.kubectl.get_or_none("clusterrole", f"ludus-operator-{namespace}-discovery") is None


def _service_account_kubeconfig(cluster: TestCluster, namespace: str, path: Path) -> Path:
    admin: dict[str, Any] = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    token = cluster.kubectl.run("create", "token", "ludus-operator", "-n", namespace, "--duration=1h").stdout.strip()
    admin["users"] = [{"name": "ludus-operator", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "ludus-operator"
    path.write_text(yaml.safe_dump(admin))
    return path


def test_the_charts_rbac_is_enough_to_run_a_job_end_to_end(cluster: TestCluster, k: Kubectl, namespace: str,
                                                           tmp_path: Path) -> None:
    helm(cluster, "install", "ludus", str(CHART), "--namespace", namespace, "--set", f"watchNamespaces={{{namespace}}}")
    kubeconfig = _service_account_kubeconfig(cluster, namespace, tmp_path / "sa.kubeconfig")
    operator = OperatorProcess(str(kubeconfig), namespace, tmp_path).start()
    try:
        k.apply(make_job("rbac").workers(2).spec(ttlSecondsAfterFinished=1).on_fake_nodes().manifest())
        wait_for(lambda: (k.json("tj", "rbac").get("status") or {}).get("workers") == "2/2", what="Running 2/2")
        k.run("annotate", "pod", "rbac-worker-1", "ludus.dev/kwok-exit-code=137")
        wait_for(lambda: (k.json("tj", "rbac").get("status") or {}).get("restarts") == 1, what="a restart")
        wait_for(lambda: (k.json("tj", "rbac").get("status") or {}).get("workers") == "2/2", what="Running again")
        for pod in ("rbac-worker-0", "rbac-worker-1"):
            k.run("annotate", "pod", pod, "ludus.dev/kwok-exit-code=0", "--overwrite")
        wait_for(lambda: k.get_or_none("tj", "rbac") is None, what="Succeeded, then deleted by its TTL")
        assert "forbidden" not in operator.log_path.read_text().lower()
    finally:
        operator.stop()
        helm(cluster, "uninstall", "ludus", "--namespace", namespace, check=False)


def _flags(args: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def test_the_chart_and_the_kustomize_base_agree_on_every_security_default(cluster: TestCluster) -> None:
    """Installed either way, the operator refuses pods beyond `restricted`, lets only namespace-qualified
    readers at the trainers' metrics, and Prometheus does not let a trainer's page overwrite its labels."""
    rendered = helm(cluster, "template", "ludus", str(CHART), "--namespace", "ludus-system", "--kube-version",
                    "1.33.13", "--api-versions", "monitoring.coreos.com/v1").stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    chart = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    base_doc = yaml.safe_load((REPO / "manifests" / "operator" / "deployment.yaml").read_text())
    base = base_doc["spec"]["template"]["spec"]["containers"][0]
    chart_flags, base_flags = _flags(chart["args"]), _flags(base["args"])
    for flag in ("pod-security", "network-policy", "metrics-port", "health-port", "log-level", "api-qps",
                 "api-burst"):
        assert chart_flags[flag] == base_flags[flag], flag
    assert float(chart_flags["api-qps"]) == DEFAULTS.api_qps and int(chart_flags["api-burst"]) == DEFAULTS.api_burst
    assert chart_flags["pod-security"] == DEFAULTS.pod_security == "restricted"
    chart_readers, base_readers = json.loads(chart_flags["metrics-from"]), json.loads(base_flags["metrics-from"])
    assert [r["namespaceSelector"] for r in chart_readers] == [r["namespaceSelector"] for r in base_readers]
    assert all(namespace_qualified(r) for r in chart_readers + base_readers)
    for container in (chart, base):
        assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} \
            in container["env"]
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["honorLabels"] is False
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_ludus_dev_job_name"], "targetLabel": "job"} \
        in endpoint["relabelings"]
