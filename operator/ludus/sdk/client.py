"""LudusClient: every verb on TrainingJobs, through the official `kubernetes` client.

It reuses the operator's pydantic models (`ludus.api.models.TrainingJob`), so what the SDK sends
and reads is what the CRD is generated from and what the operator parses.
"""

from __future__ import annotations

import builtins
import os
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel
from urllib3.exceptions import HTTPError

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import TrainingJob
from ludus.api.sweep import Sweep
from ludus.sdk.errors import Invalid, LudusError, WaitTimeout, translate
from ludus.sdk.logs import LogStreams
from ludus.sdk.script import script_configmap, script_job, with_script

T = TypeVar("T")
TERMINAL = frozenset(c.TERMINAL_PHASES)


def _job(body: Mapping[str, Any]) -> TrainingJob:
    return TrainingJob.model_validate(body)


def _manifest(job: TrainingJob | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A TrainingJob to send: a model (only the fields set), a dict, or a YAML file's path."""
    if isinstance(job, TrainingJob):
        body = job.model_dump(by_alias=True, exclude_unset=True, mode="json")
        body.pop("status", None)
        return {"apiVersion": c.API_VERSION, "kind": c.KIND, **body}
    if isinstance(job, str | Path):
        path = Path(job)
        if not path.exists():
            raise Invalid(f"{path}: no such file")
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == c.KIND]
        if len(jobs) != 1:
            raise Invalid(f"{path}: expected one TrainingJob, found {len(jobs)}")
        return dict(jobs[0])
    body = dict(job)
    if body.get("kind", c.KIND) != c.KIND:
        raise Invalid(f"expected kind {c.KIND}, got {body.get('kind')}")
    return {"apiVersion": c.API_VERSION, "kind": c.KIND, **body}


class LudusClient:
    """TrainingJobs in one cluster. `api_client` wins; else the kubeconfig `context` (or the current
    one); else the in-cluster service account."""

    def __init__(self, api_client: k8s.ApiClient | None = None, *, context: str | None = None,
                 namespace: str | None = None, config_file: str | None = None,
                 request_timeout: float | None = None) -> None:
        self.context = context
        if api_client is None:
            api_client = self._load(context, config_file)
        self.request_timeout = request_timeout  # seconds for list/get; None: the client's default
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.server = str(api_client.configuration.host)
        self.namespace = namespace or self._default_namespace(context, config_file)

    @staticmethod
    def _load(context: str | None, config_file: str | None) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(config_file=config_file, context=context,
                                        client_configuration=configuration)
        except (k8s_config.ConfigException, OSError) as err:
            if context or config_file or "KUBERNETES_SERVICE_HOST" not in os.environ:
                raise LudusError(f"no usable kubeconfig{f' context {context}' if context else ''}: {err}") from err
            k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)

    @staticmethod
    def _default_namespace(context: str | None, config_file: str | None) -> str:
        try:
            _, active = k8s_config.list_kube_config_contexts(config_file=config_file)
            contexts, _ = k8s_config.list_kube_config_contexts(config_file=config_file)
            chosen = next((x for x in contexts if x["name"] == context), active) if context else active
            return str((chosen or {}).get("context", {}).get("namespace") or "default")
        except (k8s_config.ConfigException, OSError, TypeError):
            path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            return path.read_text().strip() if path.exists() else "default"

    # --- plumbing ---------------------------------------------------------------------------------------
    def _call(self, verb: str, resource: str, namespace: str | None, fn: Callable[[], T],
              name: str | None = None) -> T:
        try:
            return fn()
        except ApiException as err:
            raise translate(err, verb=verb, resource=resource, namespace=namespace, server=self.server,
                            context=self.context, name=name) from err
        except (HTTPError, OSError) as err:
            raise translate(err, verb=verb, resource=resource, namespace=namespace, server=self.server,
                            context=self.context, name=name) from err

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def _patch(self, name: str, namespace: str | None, patch: dict[str, Any], verb: str) -> TrainingJob:
        ns = self._ns(namespace)
        body = self._call(verb, c.PLURAL, ns, lambda: self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, name, patch), name)
        return _job(body)

    # --- verbs ------------------------------------------------------------------------------------------
    def create(self, job: TrainingJob | Mapping[str, Any] | str | Path, namespace: str | None = None,
               *, dry_run: bool = False) -> TrainingJob:
        """Create from a model, a dict or a YAML file. `dry_run` asks the API server to check it
        (schema, CEL rules) without storing it."""
        body = _manifest(job)
        ns = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        body.setdefault("metadata", {})["namespace"] = ns
        kwargs = {"dry_run": "All"} if dry_run else {}
        created = self._call("create", c.PLURAL, ns, lambda: self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, body, **kwargs), body["metadata"].get("name"))
        return _job(created)

    def get(self, name: str, namespace: str | None = None) -> TrainingJob:
        ns = self._ns(namespace)
        return _job(self._call("get", c.PLURAL, ns, lambda: self.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, name), name))

    def list(self, namespace: str | None = None, *, label_selector: str | None = None,
             all_namespaces: bool = False) -> list[TrainingJob]:
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if self.request_timeout:
            kwargs["_request_timeout"] = self.request_timeout
        if all_namespaces:
            items = self._call("list", c.PLURAL, None, lambda: self.custom.list_cluster_custom_object(
                c.GROUP, c.VERSION, c.PLURAL, **kwargs))
        else:
            ns = self._ns(namespace)
            items = self._call("list", c.PLURAL, ns, lambda: self.custom.list_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, c.PLURAL, **kwargs))
        return [_job(item) for item in items.get("items", [])]

    def watch(self, name: str | None = None, namespace: str | None = None,
              timeout: float | None = None) -> Iterator[tuple[str, TrainingJob]]:
        """(event type, job) as the API server reports changes; one job when `name` is given."""
        ns = self._ns(namespace)
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}"} if name else {}
        if timeout is not None:
            kwargs["timeout_seconds"] = max(int(timeout), 1)
        stream = k8s_watch.Watch()
        try:
            for event in self._call("watch", c.PLURAL, ns, lambda: stream.stream(
                    self.custom.list_namespaced_custom_object, c.GROUP, c.VERSION, ns, c.PLURAL, **kwargs)):
                yield str(event["type"]), _job(event["object"])
        finally:
            stream.stop()

    def wait(self, name: str, namespace: str | None = None, *, phases: Iterable[str] = TERMINAL,
             condition: str | None = None, timeout: float | None = None) -> TrainingJob:
        """Until the job reaches one of `phases` (or `condition` is True); returns the job as it then is,
        Failed included. Raises WaitTimeout."""
        wanted = set(phases)

        def done(job: TrainingJob) -> bool:
            if condition is not None:
                return any(x.type == condition and x.status == "True" for x in job.status.conditions)
            return job.status.phase in wanted

        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(name, namespace)
        while not done(job):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"{name} is {job.status.phase} after {timeout:g}s, not "
                                  f"{condition or ' or '.join(sorted(wanted))}")
            for _, seen in self.watch(name, namespace, timeout=min(left, 30) if left is not None else 30):
                job = seen
                if done(job):
                    break
            else:
                job = self.get(name, namespace)  # the watch ended: look again
        return job

    def events(self, name: str, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        """The job's Events, oldest first."""
        ns = self._ns(namespace)
        events = self._call("list", "events", ns, lambda: self.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name},involvedObject.kind={c.KIND}"))
        out = [{"time": e.last_timestamp or e.event_time or e.first_timestamp, "type": e.type, "reason": e.reason,
                "message": e.message, "count": e.count or 1} for e in events.items]
        return sorted(out, key=lambda e: str(e["time"] or ""))

    def suspend(self, name: str, namespace: str | None = None) -> TrainingJob:
        return self._patch(name, namespace, {"spec": {"suspend": True}}, "patch")

    def resume(self, name: str, namespace: str | None = None) -> TrainingJob:
        return self._patch(name, namespace, {"spec": {"suspend": False}}, "patch")

    def scale(self, name: str, replicas: int, namespace: str | None = None) -> TrainingJob:
        if replicas < 1:
            raise Invalid("replicas must be at least 1")
        return self._patch(name, namespace, {"spec": {"replicas": replicas}}, "patch")

    def delete(self, name: str, namespace: str | None = None, *, wait: bool = False,
               timeout: float = 120) -> None:
        """Delete the job (its pods go with it); `wait` returns once the job and its pods are gone."""
        ns = self._ns(namespace)
        self._call("delete", c.PLURAL, ns, lambda: self.custom.delete_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, c.PLURAL, name, propagation_policy="Foreground"), name)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        selector = f"{c.LABEL_JOB_NAME}={name}"
        while time.monotonic() < deadline:
            pods = self._call("list", "pods", ns, lambda: self.core.list_namespaced_pod(ns, label_selector=selector))
            try:
                self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, name)
                gone = False
            except ApiException as err:
                gone = err.status == 404
            if gone and not pods.items:
                return
            time.sleep(0.5)
        raise WaitTimeout(f"{name} or its pods still exist after {timeout:g}s")

    def logs(self, name: str, namespace: str | None = None, *, follow: bool = False, rank: int | None = None,
             poll: float = 1.0) -> Iterator[str]:
        """Every worker's lines, prefixed `[worker-N]`. With `follow`, it picks up replaced pods across
        restarts and ends when the job has finished and every stream has ended."""
        ns = self._ns(namespace)
        selector = f"{c.LABEL_JOB_NAME}={name},{c.LABEL_ROLE}={c.ROLE_WORKER}"
        if rank is not None:
            selector += f",{c.LABEL_REPLICA_INDEX}={rank}"
        streams = LogStreams(self.core, ns, follow, lambda: self._call(
            "list", "pods", ns, lambda: self.core.list_namespaced_pod(ns, label_selector=selector)))
        self.get(name, namespace)  # NotFound before anything else
        streams.look()
        while True:
            try:
                line = streams.lines.get(timeout=poll)
            except queue.Empty:
                line = None
            if line is not None:
                yield line
                continue
            if not follow and streams.idle():
                return
            if follow:
                streams.look()
                if streams.idle() and self.get(name, namespace).status.phase in TERMINAL:
                    streams.look()  # a last look: a pod that started meanwhile
                    if streams.idle():
                        return

    # --- resources that own jobs: Sweep, ContinuousTraining ---------------------------------------------
    def _create_owner(self, kind: str, plural: str, obj: BaseModel | Mapping[str, Any] | str | Path,
                      namespace: str | None, dry_run: bool, script: str | Path | None = None) -> dict[str, Any]:
        body = _owner_body(kind, obj)
        ns = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        body.setdefault("metadata", {})["namespace"] = ns
        shipped = None
        if script is not None:
            name = body["metadata"].get("name")
            if not name:
                raise Invalid(f"a {kind} that ships a script needs metadata.name (its ConfigMap is named after it)")
            data, items, entry = script_configmap(Path(script))
            spec = dict(body.get("spec") or {})
            spec["template"] = with_script(dict(spec.get("template") or {}), f"{name}-script", entry, items)
            shipped, wanted_suspend = data, bool(spec.get("suspend"))
            # Held until the ConfigMap exists, so no trial or run starts without its script.
            body["spec"] = {**spec, "suspend": spec.get("suspend", False) or not dry_run}
        kwargs = {"dry_run": "All"} if dry_run else {}
        created: dict[str, Any] = self._call("create", plural, ns, lambda: self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, plural, body, **kwargs), body["metadata"].get("name"))
        if shipped is not None and not dry_run:
            meta = created["metadata"]
            self._ship_script(kind, meta["name"], meta["uid"], ns, shipped)
            if not wanted_suspend:
                created = self._call("patch", plural, ns, lambda: self.custom.patch_namespaced_custom_object(
                    c.GROUP, c.VERSION, ns, plural, created["metadata"]["name"], {"spec": {"suspend": False}}),
                    created["metadata"]["name"])
        return created

    def _ship_script(self, kind: str, name: str, uid: str, ns: str, data: Mapping[str, str],
                     labels: Mapping[str, str] | None = None) -> None:
        """The script's ConfigMap `<name>-script`, owned by the resource that mounts it (deleted with it)."""
        ref = {"apiVersion": c.API_VERSION, "kind": kind, "name": name, "uid": uid,
               "controller": False, "blockOwnerDeletion": False}
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"{name}-script", "namespace": ns, "ownerReferences": [ref],
                                  **({"labels": dict(labels)} if labels else {})},
                     "data": dict(data)}
        self._call("create", "configmaps", ns, lambda: self.core.create_namespaced_config_map(ns, configmap))

    def _get_owner(self, plural: str, name: str, namespace: str | None) -> dict[str, Any]:
        ns = self._ns(namespace)
        body: dict[str, Any] = self._call("get", plural, ns, lambda: self.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, plural, name), name)
        return body

    def _list_owners(self, plural: str, namespace: str | None, all_namespaces: bool) -> builtins.list[Any]:
        if all_namespaces:
            items = self._call("list", plural, None, lambda: self.custom.list_cluster_custom_object(
                c.GROUP, c.VERSION, plural))
        else:
            ns = self._ns(namespace)
            items = self._call("list", plural, ns, lambda: self.custom.list_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, plural))
        return list(items.get("items", []))

    def _delete_owner(self, plural: str, name: str, namespace: str | None) -> None:
        """Delete it; its TrainingJobs go with it (they are owned by it)."""
        ns = self._ns(namespace)
        self._call("delete", plural, ns, lambda: self.custom.delete_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, plural, name, propagation_policy="Foreground"), name)

    def _annotate_owner(self, plural: str, name: str, namespace: str | None, annotations: dict[str, str]
                        ) -> dict[str, Any]:
        ns = self._ns(namespace)
        patch = {"metadata": {"annotations": annotations}}
        body: dict[str, Any] = self._call("patch", plural, ns, lambda: self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, ns, plural, name, patch), name)
        return body

    # --- sweeps ------------------------------------------------------------------------------------------
    def create_sweep(self, sweep: Sweep | Mapping[str, Any] | str | Path, namespace: str | None = None,
                     *, dry_run: bool = False, script: str | Path | None = None) -> Sweep:
        """Create a Sweep from a model, a dict or a YAML file with one Sweep. `script` (a file, or a package
        directory with __main__.py) travels in a ConfigMap the Sweep owns and runs in every trial."""
        return Sweep.model_validate(self._create_owner(c.SWEEP_KIND, c.SWEEP_PLURAL, sweep, namespace, dry_run,
                                                       script))

    def get_sweep(self, name: str, namespace: str | None = None) -> Sweep:
        return Sweep.model_validate(self._get_owner(c.SWEEP_PLURAL, name, namespace))

    def list_sweeps(self, namespace: str | None = None, *, all_namespaces: bool = False) -> builtins.list[Sweep]:
        return [Sweep.model_validate(item) for item in self._list_owners(c.SWEEP_PLURAL, namespace, all_namespaces)]

    def delete_sweep(self, name: str, namespace: str | None = None) -> None:
        """Delete the Sweep; its trials go with it."""
        self._delete_owner(c.SWEEP_PLURAL, name, namespace)

    # --- continuous training -----------------------------------------------------------------------------
    def create_continuous(self, ct: ContinuousTraining | Mapping[str, Any] | str | Path,
                          namespace: str | None = None, *, dry_run: bool = False,
                          script: str | Path | None = None) -> ContinuousTraining:
        """Create a ContinuousTraining from a model, a dict or a YAML file with one. `script` travels in a
        ConfigMap it owns and runs in every run."""
        return ContinuousTraining.model_validate(self._create_owner(c.CT_KIND, c.CT_PLURAL, ct, namespace, dry_run,
                                                                    script))

    def get_continuous(self, name: str, namespace: str | None = None) -> ContinuousTraining:
        return ContinuousTraining.model_validate(self._get_owner(c.CT_PLURAL, name, namespace))

    def list_continuous(self, namespace: str | None = None, *, all_namespaces: bool = False
                        ) -> builtins.list[ContinuousTraining]:
        return [ContinuousTraining.model_validate(item)
                for item in self._list_owners(c.CT_PLURAL, namespace, all_namespaces)]

    def delete_continuous(self, name: str, namespace: str | None = None) -> None:
        """Delete it and its runs; the models on the claim stay."""
        self._delete_owner(c.CT_PLURAL, name, namespace)

    def retrain(self, name: str, namespace: str | None = None) -> ContinuousTraining:
        """Ask for a run now (the ludus.dev/retrain annotation; concurrencyPolicy still applies)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return ContinuousTraining.model_validate(
            self._annotate_owner(c.CT_PLURAL, name, namespace, {c.ANNOTATION_RETRAIN: stamp}))

    def promote(self, name: str, run: str, namespace: str | None = None) -> ContinuousTraining:
        """Make a succeeded run's model the champion by hand, the promotion rule aside (a rollback)."""
        ct = self.get_continuous(name, namespace)
        record = next((r for r in ct.status.runs if r.name == run), None)
        if record is None:
            known = ", ".join(r.name for r in ct.status.runs) or "none yet"
            raise Invalid(f"{name} has no run {run!r} (its runs: {known})")
        if record.phase != c.PHASE_SUCCEEDED:
            raise Invalid(f"{run} is {record.phase}: only a succeeded run's model can be promoted")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return ContinuousTraining.model_validate(
            self._annotate_owner(c.CT_PLURAL, name, namespace, {c.ANNOTATION_PROMOTE: f"{run}@{stamp}"}))

    def train(self, script: str | Path, *, name: str | None = None, namespace: str | None = None,
              replicas: int = 1, nproc: int | str = "auto", gpus: int = 0, image: str = "ludus-trainer:latest",
              args: Iterable[str] = (), cpu: str | None = None, memory: str | None = None,
              restart_policy: str = "OnFailure", backoff_limit: int | None = None,
              dry_run: bool = False, objective: str | None = None) -> TrainingJob:
        """Run a local script (or a package directory with a __main__.py) as a TrainingJob: its files
        travel in a ConfigMap owned by the job, and `ludus_trainer --script` runs them. `objective` is
        `METRIC:max|min` (default: the loss the script reports, minimized)."""
        path = Path(script)
        ns = self._ns(namespace)
        job_name = name or _name_for(path)
        data, items, entry = script_configmap(path)
        body = script_job(job_name, ns, entry, replicas=replicas, nproc=nproc, gpus=gpus, image=image,
                          args=list(args), cpu=cpu, memory=memory, suspended=not dry_run, items=items,
                          restart_policy=restart_policy, backoff_limit=backoff_limit, objective=objective)
        if dry_run:
            return self.create(body, ns, dry_run=True)
        created = self.create(body, ns)
        self._ship_script(c.KIND, job_name, created.metadata.uid, ns, data, {c.LABEL_JOB_NAME: job_name})
        return self.resume(job_name, ns)


def _owner_body(kind: str, obj: BaseModel | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A Sweep's or ContinuousTraining's body from a model, a dict or a YAML file with exactly one."""
    if isinstance(obj, BaseModel):
        body = obj.model_dump(by_alias=True, exclude_unset=True, mode="json")
        body.pop("status", None)
    elif isinstance(obj, str | Path):
        path = Path(obj)
        if not path.exists():
            raise Invalid(f"{path}: no such file")
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") == kind]
        if len(docs) != 1:
            raise Invalid(f"{path}: expected one {kind}, found {len(docs)}")
        body = dict(docs[0])
    else:
        body = dict(obj)
    body.update({"apiVersion": c.API_VERSION, "kind": kind})
    return body


def _name_for(path: Path) -> str:
    """A DNS-1035 name from the script's name, with a short random suffix."""
    import re
    import secrets

    stem = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower() if path.is_file() else path.name.lower()).strip("-")
    stem = (stem if stem and stem[0].isalpha() else f"job-{stem}")[:40].rstrip("-")
    return f"{stem}-{secrets.token_hex(2)}"
