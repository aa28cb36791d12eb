"""A finished job's model, exported, and a new job's model initialised from one (transfer learning).

Export: `<dir>/model/weights.pt` (the model's state dict, nothing else) and `metadata.json` beside
it (job, step, evaluation, objective, framework versions and the weights' SHA-256). Each file is
written under a temporary name, fsynced and renamed, weights first: a reader that finds the
metadata finds complete weights whose checksum it can verify.

Initialise: weights only (a new optimizer, step 0). Strict by default: every tensor of the model
must be in the file with the same shape. Not strict: what matches is loaded and the rest keeps its
fresh initialisation (a new classifier head for new classes); both lists are reported. `freeze`
names module prefixes whose parameters then stay fixed.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ludus_trainer.checkpoint import write_atomically
from ludus_trainer.digest import METADATA, WEIGHTS, InitError, sha256_of

__all__ = ["InitError", "InitReport", "export_model", "load_into"]


@dataclass(frozen=True)
class InitReport:
    source: str
    sha256: str
    step: int | None
    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "step": self.step, "loaded": len(self.loaded),
                "reinitialized": self.reinitialized, "frozen": self.frozen}


def export_model(directory: Path, model: nn.Module, metadata: Mapping[str, Any]) -> Path:
    """Write `directory/model/{weights.pt,metadata.json}`; returns the model directory."""
    target = Path(directory) / "model"
    target.mkdir(parents=True, exist_ok=True)
    weights = target / WEIGHTS
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_atomically(weights, lambda f: torch.save(state, f))
    full = {**metadata, "sha256": sha256_of(weights), "torch": torch.__version__,
            "python": platform.python_version(), "tensors": len(state)}
    write_atomically(target / METADATA, lambda f: f.write(json.dumps(full, indent=2, sort_keys=True).encode()))
    return target


def _resolve(source: Path) -> tuple[Path, dict[str, Any]]:
    """The weights file a source names (an exported model directory, its parent, or a file), and its metadata."""
    for candidate in (source / "model", source):
        if (candidate / WEIGHTS).is_file():
            meta_path = candidate / METADATA
            metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            return candidate / WEIGHTS, metadata
    if source.is_file():
        return source, {}
    raise InitError(f"no model at {source}: expected {source}/model/{WEIGHTS} (a finished job's export) or a "
                    f"weights file; has the source job finished?")


def load_into(model: nn.Module, source: Path, *, strict: bool = True, freeze: Sequence[str] = ()) -> InitReport:
    """Initialise `model` from an exported model (before it is wrapped for data parallelism)."""
    weights, metadata = _resolve(Path(source))
    checksum = sha256_of(weights)
    if metadata.get("sha256") and metadata["sha256"] != checksum:
        raise InitError(f"{weights}: SHA-256 {checksum[:12]} does not match its metadata "
                        f"({str(metadata['sha256'])[:12]}): the file was changed or only partly copied")
    loaded_state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(loaded_state, Mapping) and "workload" in loaded_state:  # a training checkpoint
        loaded_state = loaded_state["workload"].get("model", loaded_state["workload"])
    own = model.state_dict()
    matching = {k: v for k, v in loaded_state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    fresh = sorted(k for k in own if k not in matching)
    if strict and fresh:
        shapes = [f"{k} {tuple(own[k].shape)} vs {tuple(loaded_state[k].shape) if k in loaded_state else 'absent'}"
                  for k in fresh]
        raise InitError(f"{weights} does not fit the model (strict): {'; '.join(shapes)}. Set init.strict: false "
                        "to load what matches and re-initialise the rest (for example a new classifier head)")
    model.load_state_dict({**own, **matching})
    frozen = []
    for name, parameter in model.named_parameters():
        if any(name == p or name.startswith(p.rstrip(".") + ".") for p in freeze):
            parameter.requires_grad_(False)
            frozen.append(name)
    unknown = [p for p in freeze if not any(n == p or n.startswith(p.rstrip(".") + ".") for n in frozen)]
    if unknown:
        raise InitError(f"freeze names no parameter: {', '.join(unknown)} (the model has "
                        f"{', '.join(sorted({n.split('.')[0] for n, _ in model.named_parameters()}))})")
    return InitReport(source=str(weights), sha256=checksum, step=metadata.get("step"), loaded=sorted(matching),
                      reinitialized=fresh, frozen=frozen)
