"""Test helpers that act as a user would: kubectl, YAML, and polling with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Kubectl:
    """kubectl bound to one kubeconfig (and optionally one namespace)."""

    def __init__(self, binary: str, kubeconfig: str, namespace: str | None = None) -> None:
        self.binary, self.kubeconfig, self.namespace = binary, kubeconfig, namespace

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.binary, self.kubeconfig, namespace)

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            cmd.append(f"--namespace={self.namespace}")
        result = subprocess.run([*cmd, *args], input=input, text=True, capture_output=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def apply(self, *docs: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Apply objects as JSON: YAML written by PyYAML (1.2 rules) can mean something else to
        kubectl's YAML 1.1 parser (an env var named N or a value y would arrive as a boolean)."""
        stream = "\n".join(json.dumps(doc) for doc in docs)
        return self.run("apply", "-f", "-", input=stream, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json").stdout)

    def get_or_none(self, *args: str) -> Any:
        result = self.run("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def items(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = [kind] + (["-l", selector] if selector else [])
        return list(self.json(*args)["items"])

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}


def wait_for(check: Callable[[], T], *, timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check.__name__}; last: {last!r}")
