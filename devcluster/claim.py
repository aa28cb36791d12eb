"""Who is using the built-in cluster: a claim file beside its state.

A test run and `make demo` must never share one cluster: a demo started during a test run found the
cluster up, took it as its own and installed the cluster-wide operator into it, and from then on two
operators wrote every test namespace's jobs. The test suite claims the cluster it uses, `make demo`
claims it while it runs, and `make cluster-up` and `make demo` refuse a cluster another live process
claimed. A claim whose process has exited (killed, crashed) no longer counts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

CLAIM_FILE: Final = "claim.json"
# The labels every installed operator carries (manifests/operator/deployment.yaml and the Helm chart).
OPERATOR_SELECTOR: Final = "app.kubernetes.io/name=ludus,app.kubernetes.io/component=operator"


class ClusterInUse(RuntimeError):
    """Another live process holds the cluster."""


@dataclass(frozen=True)
class Claim:
    user: str  # what holds it, as a person would name it: "make test", "make demo"
    pid: int
    started: str  # the process's start time (/proc/PID/stat), so a reused pid is not mistaken for it
    since: float

    def describe(self) -> str:
        age = max(0, int(time.time() - self.since))
        return f"{self.user} (pid {self.pid}, for {age} s)"


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces; it ends at the last ')'
    return fields[19] if len(fields) > 19 else None


def current_claim(root: Path) -> Claim | None:
    """The claim on the cluster under `root`, if the process that made it is still running."""
    try:
        raw: Any = json.loads((root / CLAIM_FILE).read_text())
        claim = Claim(user=str(raw["user"]), pid=int(raw["pid"]), started=str(raw["started"]),
                      since=float(raw["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return claim if _process_start(claim.pid) == claim.started else None


def take(root: Path, user: str) -> Claim:
    """Claim the cluster for this process; refuse one another live process holds."""
    held = current_claim(root)
    if held is not None and held.pid != os.getpid():
        raise ClusterInUse(in_use_message(root, held))
    claim = Claim(user=user, pid=os.getpid(), started=_process_start(os.getpid()) or "", since=time.time())
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{CLAIM_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(claim)))
    tmp.replace(root / CLAIM_FILE)
    return claim


def release(root: Path) -> None:
    """Drop this process's claim (another process's is left alone)."""
    held = current_claim(root)
    if held is not None and held.pid == os.getpid():
        (root / CLAIM_FILE).unlink(missing_ok=True)


def run_holding(root: Path, user: str, body: Callable[[], int], say: Callable[[str], None]) -> int:
    """Run a demo's `body` holding the cluster; 3 without running it when another run holds it (a demo
    started during a test run would put a second, cluster-wide operator into the test's cluster)."""
    try:
        take(root, user)
    except ClusterInUse as err:
        say(f"refusing to run the demo: {err}")
        return 3
    try:
        return body()
    finally:
        release(root)


def in_use_message(root: Path, held: Claim) -> str:
    return (f"the built-in cluster in {root} is in use by {held.describe()}: wait for it to finish "
            f"(one cluster at a time on this machine; its real node's runtime and bridge are shared)")


def clusterwide_operators(deployments: list[dict[str, Any]]) -> list[str]:
    """`namespace/name` of each operator Deployment that watches every namespace (no -n/--namespace)."""
    found = []
    for deployment in deployments:
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        args = [str(a) for c in containers for a in (c.get("args") or [])]
        scoped = any(a in ("-n", "--namespace") or a.startswith("--namespace=") for a in args)
        if not scoped:
            meta = deployment.get("metadata", {})
            found.append(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
    return found
