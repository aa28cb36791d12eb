"""docs/sdk.md's transformers.Trainer and PyTorch Lightning scripts, read from the page, under real
torchrun (CPU, gloo, two processes): each ends with progress, evaluation and goodput phases in the
termination message the operator reads, checkpoints in the job's directory and an exported model; a
second run started from that export measures it first (its baseline). The models are built from
configs: nothing downloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devcluster.agents import Store, start_agent
from tests.doc_examples import write_example

HEADINGS = {"transformers": "### Hugging Face `transformers.Trainer`", "lightning": "### PyTorch Lightning"}


def _run(tmp_path: Path, name: str, script: Path, nproc: int, extra_env: dict[str, str] | None = None
         ) -> dict:
    """One agent of `nproc` processes running the script; the evaluation its rank 0 left for the operator."""
    with Store() as store:
        agent = start_agent(name, store=store, tmp=tmp_path, nnodes=(1, 1), nproc=nproc,
                            checkpoint_dir=tmp_path / name, trainer_args=["--script", str(script)],
                            extra_env=extra_env)
        assert agent.wait(timeout=400) == 0, agent.text()[-4000:]
    return dict(json.loads((tmp_path / f"{name}.termination-log").read_text())["ludusEvaluation"])


@pytest.mark.parametrize(("framework", "steps", "checkpoint"), [
    ("transformers", 60, "checkpoint-60"),  # max_steps
    ("lightning", 32, "last.ckpt"),  # 2 epochs of 1024 / (32 x 2 ranks)
])
def test_a_framework_script_from_the_docs_reports_progress_evaluation_goodput_and_exports_its_model(
        tmp_path: Path, framework: str, steps: int, checkpoint: str) -> None:
    script = write_example(HEADINGS[framework], tmp_path / f"{framework}_script.py")
    first = _run(tmp_path, "first", script, nproc=2)
    assert first["objective"] == {"metric": "eval_loss", "goal": "minimize"}  # the framework's default
    assert {"eval_loss", "accuracy"} <= first["latest"].keys(), first["latest"]
    assert first["latest"]["accuracy"]["value"] > 0.9 and first["latest"]["accuracy"]["step"] == steps
    goodput = first["goodput"]
    assert goodput["step"] == goodput["totalSteps"] == steps, goodput
    assert goodput["phases"]["train"] > 0 and goodput["phases"]["evaluation"] > 0, goodput
    model = tmp_path / "first" / "model"
    metadata = json.loads((model / "metadata.json").read_text())
    assert metadata["framework"] == framework and metadata["step"] == steps and (model / "weights.pt").exists()
    assert (tmp_path / "first" / checkpoint).exists()
    # Started from that export: the model it loaded, measured on this run's data before training.
    second = _run(tmp_path, "second", script, nproc=1, extra_env={"LUDUS_INIT_FROM": str(model)})
    assert second["init"]["sha256"] == metadata["sha256"]
    assert second["baseline"]["accuracy"]["value"] == pytest.approx(first["latest"]["accuracy"]["value"], abs=1e-5)
    # The loss too, for Lightning; transformers' eval loss over two processes is not the one-process
    # value (it comes out scaled by the process count), so there only its presence is compared.
    assert second["baseline"]["eval_loss"]["value"] > 0
    if framework == "lightning":
        assert second["baseline"]["eval_loss"]["value"] == pytest.approx(first["latest"]["eval_loss"]["value"],
                                                                         abs=1e-5)
