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
from devcluster.kubectl import wait_for
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


# Each framework's docs script, slowed down by a callback of its own so that a SIGTERM lands mid-run.
SLOWED = {
    "transformers": ("huggingface.train(trainer)", '''
import time
from transformers import TrainerCallback


class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.1)
        print(f"STEP {state.global_step}", flush=True)


trainer.add_callback(Slow())
huggingface.train(trainer)'''),
    "lightning": ("ludus_lightning.fit(trainer, model, train, val)", '''
import time


class Slow(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(0.1)
        print(f"STEP {trainer.global_step}", flush=True)


trainer.callbacks.append(Slow())
ludus_lightning.fit(trainer, model, train, val)'''),
}


@pytest.mark.parametrize("framework", ["transformers", "lightning"])
def test_a_framework_script_checkpoints_on_sigterm_and_the_next_run_resumes_there(
        tmp_path: Path, framework: str) -> None:
    call, slowed = SLOWED[framework]
    text = write_example(HEADINGS[framework], tmp_path / "docs.py").read_text()
    assert call in text
    script = tmp_path / "train.py"
    script.write_text(text.replace(call, slowed))
    ckpt = tmp_path / "ckpt"
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=1, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        wait_for(lambda: "STEP 15\n" in agent.text(), timeout=240, interval=0.1, what="step 15")
        agent.terminate()
        assert agent.wait(timeout=120) != 0
    reached = max(int(line.split()[-1]) for line in agent.text().splitlines() if line.startswith("STEP "))
    assert "model" not in {p.name for p in ckpt.iterdir()}  # stopped: nothing exported
    with Store() as store:
        again = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=1, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        assert again.wait(timeout=400) == 0, again.text()[-4000:]
    resumed = [int(line.split()[-1]) for line in again.text().splitlines() if line.startswith("STEP ")]
    assert "LUDUS_RESUME " in again.text()
    # The first step of the next run follows the step the SIGTERM checkpoint was saved at.
    assert reached - 1 <= resumed[0] - 1 <= reached + 1, (reached, resumed[:3])
    assert (ckpt / "model" / "weights.pt").exists()
