"""A server the built-in cluster runs as a host process (the object store, the experiment tracker): its
process and ports recorded in `<root>/state.json`, up once it answers."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import processes


@dataclass
class HostService:
    """What every such server shares; `_answers` says whether it serves."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def is_up(self) -> bool:
        pid = self.state().get("pid")
        return isinstance(pid, int) and processes.alive(pid) and self._answers()

    def _answers(self) -> bool:
        raise NotImplementedError

    def _wait_until_answering(self, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
        """Until it answers; an error naming `what` (and its log) when it exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited at once")
            if self._answers():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")
