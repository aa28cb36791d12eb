"""The only module that talks to the API server for the reconcile.

A small aiohttp client, not the `kubernetes` package: bodies are plain dicts
from the pure builders, and responses are parsed only as far as we read them.
The official client's model (de)serialisation dominates CPU at a few thousand
objects (see docs/benchmarks.md and shared research); Kopf itself uses aiohttp.
Credentials come from Kopf's own login, so both agree on the cluster.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from ludus import __version__
from ludus.api import constants as c
from ludus.runtime import fastjson, metrics

USER_AGENT: Final = f"ludus-operator/{__version__}"
_SA_TOKEN_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_TOKEN_REREAD_SECONDS: Final = 60.0
# Credentials with an expiry are renewed this long before it.
_EXPIRY_MARGIN: Final = timedelta(seconds=30)


class ApiError(Exception):
    """A response the caller may want to branch on (conflict, not found, server trouble)."""

    def __init__(self, status: int, verb: str, path: str, message: str, *, token: str | None = None) -> None:
        super().__init__(f"{verb} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message  # the API server's own words
        self.token = token  # the bearer token the request carried (a 401 makes it stale)

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


def _pem(data: str | bytes) -> bytes:
    """Kubeconfig `*-data` fields are base64 of PEM; exec plugins hand PEM itself."""
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----BEGIN") else base64.b64decode(raw)


def _load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl reads a client certificate and key only from files: they live in a private directory
    for the duration of this call and are removed at once, so no decoded key stays on disk."""
    with tempfile.TemporaryDirectory(prefix="ludus-tls-") as private:
        os.chmod(private, 0o700)
        cert_path, key_path = os.path.join(private, "client.crt"), os.path.join(private, "client.key")
        for path, content in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        context.load_cert_chain(cert_path, key_path)


def ssl_context(info: Any) -> ssl.SSLContext | bool:
    """TLS settings from a Kopf ConnectionInfo: CA and client certificate from paths or inline data."""
    if info.insecure:
        return False
    if info.ca_path:
        context = ssl.create_default_context(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        context = ssl.create_default_context(cadata=_pem(info.ca_data).decode())
    else:
        context = ssl.create_default_context()
    if info.certificate_path:
        key = os.fsdecode(info.private_key_path) if info.private_key_path else None
        context.load_cert_chain(os.fsdecode(info.certificate_path), key)
    elif info.certificate_data:
        _load_cert_chain(context, _pem(info.certificate_data), _pem(info.private_key_data or b""))
    return context


# What an object name or namespace in a request path may be: a DNS subdomain (names of every kind
# Ludus requests are DNS labels or subdomains). No '/', no '..', no escapes, no unicode.
_SEGMENT: Final = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class UnsafeName(ValueError):
    """A name that is not a Kubernetes object name cannot become part of a request path."""


def segment(name: str) -> str:
    """`name` as exactly one path segment: a name a user wrote (a ConfigMap, a PriorityClass) must
    never be normalised by the HTTP client into another namespace's path (`../other/...`)."""
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name) or ".." in name:
        raise UnsafeName(f"{name!r} is not a Kubernetes object name")
    return quote(name, safe="")


def is_object_name(name: Any) -> bool:
    try:
        segment(name)
    except UnsafeName:
        return False
    return True


def namespaced(namespace: str, plural: str, name: str = "", *, api: str = "/api/v1") -> str:
    """The path of a namespaced collection, or of one object in it."""
    base = f"{api}/namespaces/{segment(namespace)}/{plural}"
    return f"{base}/{segment(name)}" if name else base


def pod_path(namespace: str, name: str = "") -> str:
    return namespaced(namespace, "pods", name)


def config_map_path(namespace: str, name: str) -> str:
    """One ConfigMap (an empty name is refused, never the namespace's whole collection)."""
    return f"{namespaced(namespace, 'configmaps')}/{segment(name)}"


def collection_path(body: Mapping[str, Any]) -> str:
    """Where a child manifest is POSTed."""
    namespace = body["metadata"]["namespace"]
    kind = body["kind"]
    if kind == "Pod":
        return pod_path(namespace)
    if kind == "Service":
        return namespaced(namespace, "services")
    if kind == c.KIND:
        return namespaced(namespace, c.PLURAL, api=f"/apis/{c.GROUP}/{c.VERSION}")
    if kind == "PodGroup":
        return namespaced(namespace, "podgroups", api=f"/apis/{body['apiVersion']}")
    if kind == "NetworkPolicy":
        return namespaced(namespace, "networkpolicies", api="/apis/networking.k8s.io/v1")
    if kind == c.KUEUE_WORKLOAD_KIND:
        return namespaced(namespace, "workloads", api=f"/apis/{body['apiVersion']}")
    raise ValueError(f"no collection path for kind {kind}")


def job_path(namespace: str, name: str, subresource: str = "", plural: str = c.PLURAL) -> str:
    path = namespaced(namespace, plural, name, api=f"/apis/{c.GROUP}/{c.VERSION}")
    return f"{path}/{subresource}" if subresource else path


class JsonLines:
    """Splits a watch stream into its JSON documents, one per line, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[Any]:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        return [fastjson.loads(line) for line in lines if line.strip()]


Relogin = Callable[[], Any]  # returns a fresh kopf.ConnectionInfo, or None

# A 429 or 503 is sent again after the API server's Retry-After (at most this long), this many times.
MAX_RETRY_AFTER_SECONDS: Final = 30.0
RETRIES_AFTER_THROTTLE: Final = 3


class TokenBucket:
    """At most `qps` requests a second on average, `burst` at once: however many jobs a tenant makes,
    the operator's own load on the API server stays the platform's choice (client-go's rate limiter)."""

    def __init__(self, qps: float, burst: int) -> None:
        self._qps, self._burst = qps, float(max(burst, 1))
        self._tokens = self._burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        if self._qps <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._qps)
            self._at = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self._qps)
                self._tokens, self._at = 1.0, time.monotonic()
            self._tokens -= 1


def _result(status: int, raw: bytes, verb: str, path: str, token: str | None) -> dict[str, Any]:
    """A response's body, decoded; an ApiError with the API server's message for a failure."""
    if status >= 400:
        text = raw.decode("utf-8", "replace")
        try:
            message = fastjson.loads(raw).get("message", text)
        except (ValueError, AttributeError):
            message = text
        raise ApiError(status, verb, path, message, token=token)
    result: dict[str, Any] = fastjson.loads(raw) if raw else {}
    return result


def retry_after(headers: Mapping[str, str]) -> float:
    """The API server's Retry-After in seconds (1 when absent or unreadable), capped."""
    try:
        seconds = float(headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class KubeClient:
    """One pooled HTTP session to the API server, shared by all reconcile workers.

    Credentials that expire (exec plugins, OIDC, rotated service-account tokens) are
    renewed by `relogin` when the API server answers 401 or their expiry is near;
    the request is then sent once more."""

    def __init__(self, info: Any, *, connections: int = 64, relogin: Relogin | None = None,
                 qps: float = 0.0, burst: int = 1) -> None:
        self._server = str(info.server).rstrip("/")
        self._bucket = TokenBucket(qps, burst)
        self._connections = connections
        self._relogin = relogin
        self._refreshing = asyncio.Lock()
        self._retired: list[aiohttp.ClientSession] = []
        self._use(info)

    def _use(self, info: Any) -> None:
        self._info = info
        self._token = info.token
        self._token_read_at = time.monotonic()
        self._expires: datetime | None = getattr(info, "expiration", None)
        self._basic = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context(info), limit=self._connections, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=30),
            headers={"User-Agent": USER_AGENT},
        )

    async def refresh(self, stale_token: str | None) -> bool:
        """Log in again (once for many concurrent 401s); False when there is nothing to log in with."""
        if self._relogin is None:
            return False
        async with self._refreshing:
            if self._token != stale_token:
                return True  # another request refreshed while this one waited
            info = await asyncio.to_thread(self._relogin)
            if info is None:
                return False
            metrics.CREDENTIAL_REFRESHES.inc()
            same_tls = (info.certificate_data, info.certificate_path) == (
                self._info.certificate_data, self._info.certificate_path,
            )
            if same_tls:
                self._info, self._token = info, info.token
                self._expires = getattr(info, "expiration", None)
                self._basic = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
            else:
                # A new client certificate needs a new connection pool; in-flight requests finish on the old one.
                self._retired.append(self._session)
                self._use(info)
            return True

    def _expiring(self) -> bool:
        return self._expires is not None and datetime.now(UTC) >= self._expires - _EXPIRY_MARGIN

    def _headers(self) -> dict[str, str]:
        # Projected service-account tokens rotate; kubelet rewrites the file, we re-read it.
        if os.path.exists(_SA_TOKEN_PATH) and time.monotonic() - self._token_read_at > _TOKEN_REREAD_SECONDS:
            with open(_SA_TOKEN_PATH, encoding="utf-8") as f:
                self._token = f.read().strip()
            self._token_read_at = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self,
        verb: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if self._expiring():
            await self.refresh(self._token)
        try:
            return await self._send(verb, path, body, content_type, params)
        except ApiError as err:
            if err.status != 401 or not await self.refresh(err.token):
                raise
        return await self._send(verb, path, body, content_type, params)

    async def _send(
        self, verb: str, path: str, body: Any, content_type: str, params: Mapping[str, str] | None
    ) -> dict[str, Any]:
        data = None if body is None else fastjson.dumps(body)
        for attempt in range(RETRIES_AFTER_THROTTLE + 1):
            await self._bucket.take()
            token = self._token
            headers = {**self._headers(), "Content-Type": content_type, "Accept": "application/json"}
            async with self._session.request(
                verb, self._server + path, data=data, headers=headers, params=params, auth=self._basic
            ) as response:
                raw = await response.read()
                metrics.API_REQUESTS.labels(verb=verb, code=str(response.status)).inc()
                throttled = response.status in (429, 503) and attempt < RETRIES_AFTER_THROTTLE
                if not throttled:
                    return _result(response.status, raw, verb, path, token)
                wait = retry_after(response.headers)
            metrics.API_THROTTLED.inc()
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def watch(
        self, path: str, params: Mapping[str, str], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream a watch's events, decoded; ends when the server closes the watch (a relist after an
        error waits its turn in the QPS limit too).

        Lines are split by `JsonLines` rather than aiohttp's readline, which refuses
        lines above its buffer size (a pod with a large spec can exceed it)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        await self._bucket.take()
        if self._expiring():
            await self.refresh(self._token)
        token = self._token
        headers = {**self._headers(), "Accept": "application/json"}
        async with self._session.get(
            self._server + path, params=params, headers=headers, auth=self._basic, timeout=timeout
        ) as response:
            metrics.API_REQUESTS.labels(verb="WATCH", code=str(response.status)).inc()
            if response.status >= 400:
                raw = await response.read()
                if response.status == 401:
                    await self.refresh(token)  # the caller's relist then goes out with the new credentials
                raise ApiError(response.status, "WATCH", path, raw.decode("utf-8", "replace"), token=token)
            lines = JsonLines()
            async for chunk in response.content.iter_any():
                for event in lines.feed(chunk):
                    yield event
            for event in lines.feed(b"\n"):
                yield event

    async def create(self, body: Mapping[str, Any]) -> bool:
        """Create a child; True if created, False if it already existed (deterministic names make 409 success)."""
        try:
            await self.request("POST", collection_path(body), body, params={"fieldManager": c.FIELD_MANAGER})
        except ApiError as err:
            if err.conflict:
                return False
            raise
        return True

    async def apply(self, body: Mapping[str, Any]) -> None:
        """Server-side apply: create the object, or bring the fields we own to `body` (a PodGroup's
        minimum after a scale)."""
        path = f"{collection_path(body)}/{segment(body['metadata']['name'])}"
        await self.request("PATCH", path, body, content_type="application/apply-patch+yaml",
                           params={"fieldManager": c.FIELD_MANAGER, "force": "true"})

    async def delete_pod(self, namespace: str, name: str, uid: str) -> bool:
        """Delete exactly the pod we observed (a UID precondition never hits a replacement)."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            await self.request("DELETE", pod_path(namespace, name), options)
        except ApiError as err:
            if err.status in (404, 409):
                return False
            raise
        return True

    async def patch_job_status(
        self, namespace: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch .status, guarded by resourceVersion so a stale view can never overwrite a newer one."""
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return await self.request(
            "PATCH", job_path(namespace, name, "status"), patch, content_type="application/merge-patch+json"
        )

    async def set_queue_suspension(self, namespace: str, name: str, uid: str, suspend: bool) -> None:
        """Suspend a job for its queue (marked as the queue's, not the user's), or lift that suspension
        once Kueue admits it: what Kueue does to the spec.suspend of the jobs it knows."""
        annotations = {c.ANNOTATION_QUEUED: "true", c.ANNOTATION_QUEUE_SUSPENDED: "true" if suspend else None}
        patch = {"metadata": {"uid": uid, "annotations": annotations}, "spec": {"suspend": suspend}}
        await self.request("PATCH", job_path(namespace, name), patch, content_type="application/merge-patch+json")

    async def patch_workload_status(self, namespace: str, name: str, resource_version: str,
                                    status: Mapping[str, Any]) -> None:
        """Merge-patch a Kueue Workload's status, guarded by the resourceVersion it was decided on."""
        path = namespaced(namespace, "workloads", name, api=f"/apis/{c.KUEUE_WORKLOAD_API}") + "/status"
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        await self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    async def change_workload(self, namespace: str, name: str, uid: str, resource_version: str,
                              pod_sets: list[dict[str, Any]] | None) -> None:
        """Bring a Kueue Workload's pod sets to `pod_sets`, or delete it (None), both only as it was decided
        on: a Workload Kueue changed meanwhile (admitted, evicted) is decided again in the next pass."""
        path = namespaced(namespace, "workloads", name, api=f"/apis/{c.KUEUE_WORKLOAD_API}")
        try:
            if pod_sets is None:
                options = {"kind": "DeleteOptions", "apiVersion": "v1",
                           "preconditions": {"uid": uid, "resourceVersion": resource_version}}
                await self.request("DELETE", path, options)
            else:
                patch = {"metadata": {"uid": uid, "resourceVersion": resource_version}, "spec": {"podSets": pod_sets}}
                await self.request("PATCH", path, patch, content_type="application/merge-patch+json")
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def get_kueue_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One of Kueue's objects (None: there is none of that name)."""
        api = f"/apis/{c.KUEUE_WORKLOAD_API}"
        path = namespaced(namespace, plural, name, api=api) if namespace else f"{api}/{plural}/{segment(name)}"
        try:
            return await self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def list_nodes(self) -> list[dict[str, Any]]:
        """Every node (one page: what a capacity check needs is small next to the pods)."""
        body = await self.request("GET", "/api/v1/nodes")
        return list(body.get("items") or [])

    async def priority_value(self, name: str) -> int | None:
        """The value of a PriorityClass (None: there is none of that name)."""
        try:
            body = await self.request("GET", f"/apis/scheduling.k8s.io/v1/priorityclasses/{segment(name)}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return int(body.get("value", 0))

    async def delete_job(self, namespace: str, name: str, uid: str) -> None:
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            await self.request("DELETE", job_path(namespace, name), options)
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def post_event(self, job: Mapping[str, Any], type_: str, reason: str, message: str, now: str,
                         kind: str = c.KIND) -> None:
        """Record a core/v1 Event on the job, or a Sweep (what `kubectl describe` shows)."""
        meta = job["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": c.API_VERSION,
                "kind": kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[: c.MAX_EVENT_MESSAGE],
            "source": {"component": c.MANAGED_BY},
            "reportingComponent": f"{c.GROUP}/operator",
            "reportingInstance": os.environ.get("HOSTNAME", "ludus-operator"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.request("POST", namespaced(meta["namespace"], "events"), event)

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            await session.close()
