"""Reading what a real job did: its status, its logs, and events.jsonl on the shared volume."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.kube import Kubectl, wait_for

_RESULT = re.compile(r"LUDUS_RESULT (\{.*\})")


def phase(k: Kubectl, name: str) -> str:
    return (k.json("tj", name).get("status") or {}).get("phase", "")


def wait_phase(k: Kubectl, name: str, wanted: str, timeout: float = 300) -> None:
    def reached() -> bool:
        current = phase(k, name)
        if current == "Failed" and wanted != "Failed":
            status = k.json("tj", name)["status"]
            raise AssertionError(f"{name} Failed: {status.get('conditions')}")
        return current == wanted

    wait_for(reached, timeout=timeout, interval=1, what=f"{name} {wanted}")


def worker_logs(k: Kubectl, name: str) -> str:
    return k.run("logs", "-l", f"ludus.dev/job-name={name},ludus.dev/role=worker", "--tail=-1",
                 "--max-log-requests=8", check=False).stdout


def result_from_logs(text: str) -> dict[str, Any] | None:
    found = _RESULT.findall(text)
    return json.loads(found[-1]) if found else None


def events(volume: Path) -> list[dict[str, Any]]:
    path = volume / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def progress_step(volume: Path) -> int:
    try:
        return int(json.loads((volume / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_step(volume: Path, step: int, timeout: float = 240) -> int:
    return wait_for(lambda: progress_step(volume) if progress_step(volume) >= step else 0,
                    timeout=timeout, interval=0.2, what=f"training at step {step}")


def now() -> float:
    return time.time()
