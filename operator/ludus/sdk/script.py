"""A local script or package directory as a TrainingJob: its files in a ConfigMap, run by the harness.

Pure: files in, manifests out. A ConfigMap holds at most 1 MiB, so anything larger gets an error
that says what to do instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from ludus.api import constants as c
from ludus.sdk.errors import Invalid, TooLarge

MOUNT: Final = "/ludus/script"
# What the files may take of a ConfigMap's 1 MiB (the rest is metadata and encoding).
MAX_BYTES: Final = 900 * 1024
_SKIP_DIRS: Final = frozenset({"__pycache__", ".git", ".venv", "venv", "node_modules", ".mypy_cache",
                               ".pytest_cache", ".ruff_cache"})


def _key(number: int, relative: str) -> str:
    """A ConfigMap key for a file (keys allow [-._a-zA-Z0-9] only; the number keeps them unique)."""
    return f"f{number:04d}-" + re.sub(r"[^-._a-zA-Z0-9]", "_", Path(relative).name)


def _files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    out = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path.parent)
        if file.is_file() and not any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts):
            out.append((relative.as_posix(), file))
    return out


def script_configmap(path: Path) -> tuple[dict[str, str], list[dict[str, str]], str]:
    """The ConfigMap's data (key -> text), the volume's items (key -> relative path, putting each file
    back in place) and the path the harness runs."""
    if not path.exists():
        raise Invalid(f"{path}: no such file or directory")
    if path.is_dir() and not (path / "__main__.py").is_file():
        raise Invalid(f"{path} is a directory without __main__.py: name the script to run, or add one")
    if path.is_file() and path.suffix != ".py":
        raise Invalid(f"{path}: expected a Python file (.py) or a package directory")
    data: dict[str, str] = {}
    items: list[dict[str, str]] = []
    size = 0
    for number, (relative, file) in enumerate(_files(path)):
        raw = file.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Invalid(f"{file} is not text: put data in an image or a volume (spec.template.volumes), "
                          "not in the script's directory") from err
        size += len(raw)
        key = _key(number, relative)
        data[key] = text
        items.append({"key": key, "path": relative})
    if size > MAX_BYTES:
        raise TooLarge(f"{path} holds {size / 1024:.0f} KiB: a ConfigMap carries at most {MAX_BYTES // 1024} KiB. "
                       "Build an image with your code (spec.image) or mount it from a volume "
                       "(spec.template.volumes) and run it with spec.command")
    return data, items, f"{MOUNT}/{path.name}"


_OBJECTIVE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,62}):(max|min|maximize|minimize)$")


def parse_objective(text: str) -> dict[str, str]:
    """`--objective accuracy:max` as spec.objective (`max`/`min` or the goals' full names)."""
    match = _OBJECTIVE.match(text.strip())
    if match is None:
        raise Invalid(f"--objective {text!r}: expected METRIC:max or METRIC:min (e.g. accuracy:max, eval_loss:min)")
    metric, goal = match.groups()
    return {"metric": metric, "goal": "maximize" if goal.startswith("max") else "minimize"}


def script_job(name: str, namespace: str, entry: str, *, replicas: int, nproc: int | str, gpus: int, image: str,
               args: list[str], cpu: str | None, memory: str | None, suspended: bool,
               restart_policy: str = "OnFailure", backoff_limit: int | None = None,
               items: list[dict[str, str]] | None = None, objective: str | None = None) -> dict[str, Any]:
    """The TrainingJob that runs `entry` from the ConfigMap `<name>-script` under the harness. It starts
    suspended (the ConfigMap is created next, owned by the job), and is then resumed."""
    resources: dict[str, Any] = {"gpus": gpus}
    if cpu:
        resources["cpu"] = cpu
    if memory:
        resources["memory"] = memory
    spec = {
        "image": image,
        "args": args,
        "replicas": replicas,
        "nprocPerNode": nproc,
        "resources": resources,
        "suspend": suspended,
        "restartPolicy": restart_policy,
        **({"backoffLimit": backoff_limit} if backoff_limit is not None else {}),
        **({"objective": parse_objective(objective)} if objective is not None else {}),
    }
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {"ludus.dev/submitted-by": "ludus-cli"}},
        "spec": with_script(spec, f"{name}-script", entry, items),
    }


SCRIPT_VOLUME: Final = "ludus-script"


def with_script(spec: dict[str, Any], configmap: str, entry: str, items: list[dict[str, str]] | None
                ) -> dict[str, Any]:
    """A TrainingJob spec (a job's, or a Sweep's or ContinuousTraining's template) that runs `entry` from the
    ConfigMap `configmap`, mounted read-only at MOUNT, under the harness; its own volumes stay."""
    volume: dict[str, Any] = {"name": SCRIPT_VOLUME, "configMap": {"name": configmap}}
    if items is not None:
        volume["configMap"]["items"] = items
    template = dict(spec.get("template") or {})
    template["volumes"] = [*(v for v in template.get("volumes") or [] if v.get("name") != SCRIPT_VOLUME), volume]
    template["volumeMounts"] = [*(m for m in template.get("volumeMounts") or [] if m.get("name") != SCRIPT_VOLUME),
                                {"name": SCRIPT_VOLUME, "mountPath": MOUNT, "readOnly": True}]
    return {**spec, "command": ["python", "-m", "ludus_trainer", "--script", entry], "template": template}
