"""Whether a container engine and our images are usable here; tests skip with the reason if not."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache


@cache
def docker_problem(image: str = "ludus-trainer:latest") -> str | None:
    """None when Docker answers and `image` exists; otherwise why not."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no container engine answers (make test starts one with scripts/engine.sh)"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        return f"image {image} is not built (make trainer-image)"
    return None
