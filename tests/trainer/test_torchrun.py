"""Real torchrun agents on localhost (CPU, gloo): training, a killed agent, an agent joining.

Each agent is what one worker pod runs, wired by the same PET_* variables the
operator sets, meeting at a separate rendezvous store process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from devcluster.agents import Store, progress_steps, result, start_agent, starts, wait_for_step
from devcluster.kubectl import wait_for
from tests.doc_examples import write_example

INTERVAL = 20
FAST = ["--workload", "digits", "--epochs", "30", "--log-every", "1", "--checkpoint-interval", str(INTERVAL)]


def test_two_agents_of_two_processes_train_digits_to_095(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    with Store() as store:
        agents = [
            start_agent(f"a{i}", store=store, tmp=tmp_path, nnodes=(2, 2), nproc=2, checkpoint_dir=ckpt,
                        trainer_args=["--workload", "digits", "--epochs", "30"])
            for i in range(2)
        ]
        codes = [a.wait(timeout=300) for a in agents]
    texts = "".join(a.text() for a in agents)
    assert codes == [0, 0], texts[-3000:]
    final = result(texts)
    assert final is not None, texts[-3000:]
    assert final["world_size"] == 4
    assert final["accuracy"] >= 0.95
    assert {"precision", "recall", "f1"} <= final.keys()
    assert (ckpt / "progress.json").exists()
    # The agent holding global rank 0 leaves the evaluation for the TrainingJob's status: the same
    # values the trainer logged, the objective on its own.
    messages = [p.read_text() for p in tmp_path.glob("*.termination-log")]
    assert len(messages) == 1, messages
    evaluation = json.loads(messages[0])["ludusEvaluation"]
    assert evaluation["objective"] == {"metric": "accuracy", "goal": "maximize"}
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert evaluation["latest"][metric]["value"] == round(final[metric], 6), metric
        assert evaluation["latest"][metric]["step"] == final["step"]
    assert evaluation["best"]["accuracy"]["value"] >= evaluation["latest"]["accuracy"]["value"]


def test_sigkill_of_one_agent_regroups_and_resumes_within_one_interval(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    args = [*FAST, "--step-delay", "0.03"]
    with Store() as store:
        a = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 2), nproc=2, checkpoint_dir=ckpt,
                        trainer_args=args)
        b = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 2), nproc=2, checkpoint_dir=ckpt,
                        trainer_args=args)
        wait_for_step([a, b], 2 * INTERVAL + 7)
        b.kill()
        reached = max(progress_steps(a.text()) + progress_steps(b.text()))
        assert a.wait(timeout=300) == 0, a.text()[-3000:]
    text = a.text()
    restarts = [s for s in starts(text + b.text()) if s[0] > 0]
    assert restarts, f"the group never resumed from a checkpoint:\n{text[-3000:]}"
    resumed_step, world = restarts[-1]
    assert world == 2, "the survivor should train alone (2 processes)"
    redone = reached - resumed_step
    assert 0 <= redone <= INTERVAL, f"redid {redone} steps (reached {reached}, resumed at {resumed_step})"
    final = result(text)
    assert final is not None and final["accuracy"] >= 0.95


def test_a_second_agent_joining_mid_run_grows_the_world_to_four(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    args = [*FAST, "--step-delay", "0.03"]
    with Store() as store:
        a = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 2), nproc=2, checkpoint_dir=ckpt,
                        trainer_args=args)
        wait_for_step([a], INTERVAL + 5)
        b = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 2), nproc=2, checkpoint_dir=ckpt,
                        trainer_args=args)
        codes = [a.wait(timeout=300), b.wait(timeout=300)]
    texts = a.text() + b.text()
    assert codes == [0, 0], texts[-3000:]
    groups = starts(texts)
    assert groups[0] == (0, 2), groups
    grown = [s for s in groups if s[1] == 4]
    assert grown and grown[0][0] >= INTERVAL, f"no resume at world size 4: {groups}"
    final = result(texts)
    assert final is not None and final["world_size"] == 4 and final["accuracy"] >= 0.95


SHORT_SCRIPT = '''
"""A user's script too short for any of the operator's polls: it reports its loss, no metrics, no finish()."""
from ludus_trainer import api

ctx = api.init()
assert api.init() is ctx  # a second call (a library's) joins nothing twice
for step in range(1, 8):
    api.report(step=step, loss=1.0 / step, total_steps=7)
'''


def test_a_short_script_leaves_its_last_step_and_its_loss_as_the_default_objective(tmp_path: Path) -> None:
    """What the operator reads once the pods end: the final progress (step 7 of 7) and a value for the
    default objective (loss, minimized) although the script reported no evaluation metric."""
    script = tmp_path / "train.py"
    script.write_text(SHORT_SCRIPT)
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=tmp_path / "ckpt",
                            trainer_args=["--script", str(script)])
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    evaluation = json.loads((tmp_path / "a.termination-log").read_text())["ludusEvaluation"]
    assert evaluation["objective"] == {"metric": "loss", "goal": "minimize"}
    assert evaluation["latest"]["loss"] == {"value": round(1 / 7, 6), "step": 7, "epoch": 0}
    assert evaluation["best"]["loss"]["value"] == round(1 / 7, 6)
    assert (evaluation["goodput"]["step"], evaluation["goodput"]["totalSteps"]) == (7, 7)


MODEL_SCRIPT = '''
"""A user's script with its own model: start from spec.init when there is one, train, export."""
import torch
import torch.distributed as dist
from ludus_trainer import api

ctx = api.init()
torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
report = api.init_model(model)
print(f"INIT {report.sha256 if report else None}", flush=True)
for step in range(1, 6):
    loss = float(model(torch.ones(1, 4)).pow(2).mean())
    api.report(step=step, loss=loss, total_steps=5, metrics={"accuracy": 0.5 + step / 10} if step == 5 else None)
api.export_model(model)
api.finish()
'''


def test_a_scripts_exported_model_is_where_init_reads_and_what_a_second_script_starts_from(tmp_path: Path) -> None:
    """export_model writes what a ContinuousTraining promotes and init.fromJob reads; init_model applies
    spec.init (what the operator puts in LUDUS_INIT_FROM) and says what it loaded, for the status."""
    script = tmp_path / "train.py"
    script.write_text(MODEL_SCRIPT)
    first, second = tmp_path / "first", tmp_path / "second"
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=first,
                            trainer_args=["--script", str(script)])
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    metadata = json.loads((first / "model" / "metadata.json").read_text())
    assert (metadata["job"], metadata["step"], metadata["workload"]) == ("local", 5, "script")
    assert metadata["objective"] == {"metric": "loss", "goal": "minimize"}
    assert metadata["evaluation"]["accuracy"] == 1.0 and metadata["tensors"] == 2
    assert "INIT None" in agent.text()

    with Store() as store:
        agent = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=second,
                            trainer_args=["--script", str(script)],
                            extra_env={"LUDUS_INIT_FROM": str(first / "model")})
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    text = agent.text()
    assert text.count(f"INIT {metadata['sha256']}") == 2  # every rank loaded the same file
    evaluation = json.loads((tmp_path / "b.termination-log").read_text())["ludusEvaluation"]
    assert evaluation["init"]["sha256"] == metadata["sha256"] and evaluation["init"]["step"] == 5
    lineage = json.loads((second / "model" / "metadata.json").read_text())["initializedFrom"]
    assert lineage[0]["sha256"] == metadata["sha256"]


STOPPING_SCRIPT = '''
"""A user's script that checkpoints when asked to stop, and resumes where all ranks agree."""
import time
import torch
from ludus_trainer import api

ctx = api.init()
checkpoints = api.checkpoints()
state = api.resume(checkpoints)
step = state["step"] if state else 0
print(f"RESUMED {step}", flush=True)
while step < 400:
    step += 1
    api.report(step=step, loss=1.0 / step, total_steps=400)
    if ctx.env.rank == 0:
        print(f"STEP {step}", flush=True)
    if api.stop_requested():
        if ctx.env.rank == 0:
            checkpoints.save(step, {"weights": torch.zeros(1)})
        print(f"STOPPED {step}", flush=True)
        raise SystemExit(143)
    time.sleep(0.02)
api.finish()
'''


def test_a_script_checkpoints_on_sigterm_and_resumes_from_that_step(tmp_path: Path) -> None:
    """A suspend, an eviction, a drain: the kubelet's SIGTERM reaches the script through torchrun, the
    script saves where it is, and the next run resumes from that step (at most one step redone)."""
    script = tmp_path / "train.py"
    script.write_text(STOPPING_SCRIPT)
    ckpt = tmp_path / "ckpt"
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        wait_for(lambda: "STEP 30\n" in agent.text(), timeout=120, interval=0.1, what="step 30")
        agent.terminate()
        agent.wait(timeout=120)
    # Both ranks print to one pipe, unbuffered: a line and its newline are two writes, so two ranks' lines can
    # interleave ("RESUMED 35RESUMED 35"); every occurrence is read, wherever it sits.
    stopped = [int(n) for n in re.findall(r"STOPPED (\d+)", agent.text())]
    assert len(stopped) == 2 and len(set(stopped)) == 1, agent.text()[-3000:]  # every rank, at one step
    with Store() as store:
        again = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        assert again.wait(timeout=300) == 0, again.text()[-3000:]
    resumed = [int(n) for n in re.findall(r"RESUMED (\d+)", again.text())]
    assert resumed == [stopped[0]] * 2, (resumed, stopped)


def test_the_plain_pytorch_script_in_the_sdk_docs_runs_as_written(tmp_path: Path) -> None:
    """docs/sdk.md's example, taken from the page itself: it trains, checkpoints, exports and reports."""
    script = write_example("## Your training script: `ludus_trainer.api`", tmp_path / "train.py")
    ckpt = tmp_path / "ckpt"
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    assert (ckpt / "model" / "weights.pt").exists() and sorted(ckpt.glob("ckpt-*.pt"))
    evaluation = json.loads((tmp_path / "a.termination-log").read_text())["ludusEvaluation"]
    trained = evaluation["latest"]["accuracy"]["value"]
    assert evaluation["goodput"]["step"] == 1000 and trained > 0.8 and "baseline" not in evaluation
    # The same script started from that export (spec.init): the starting model measured before training.
    with Store() as store:
        agent = start_agent("b", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=tmp_path / "b",
                            trainer_args=["--script", str(script)],
                            extra_env={"LUDUS_INIT_FROM": str(ckpt / "model")})
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    second = json.loads((tmp_path / "b.termination-log").read_text())["ludusEvaluation"]
    assert second["baseline"]["accuracy"]["value"] == trained and second["init"]["step"] == 1000


OWN_WORKLOAD_SCRIPT = '''
"""A user's own Workload class in the built-in loop: no GPT concerns (no tokens, no FLOPs) asked of it."""
import torch
from ludus_trainer import api
from ludus_trainer.evaluation import Objective


class Regression:
    name = "regression"
    objective = Objective("eval_loss", "minimize")

    def __init__(self):
        torch.manual_seed(0)
        self.x = torch.randn(256, 3)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])
        self.model = torch.nn.Linear(3, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def train_size(self):
        return len(self.x)

    def train_step(self, indices):
        loss = (self.model(self.x[indices]).squeeze(1) - self.y[indices]).pow(2).mean()
        self.optimizer.zero_grad(); loss.backward(); self.optimizer.step()
        return loss.detach()

    def evaluate(self):
        with torch.no_grad():
            return {"eval_loss": float((self.model(self.x).squeeze(1) - self.y).pow(2).mean())}

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"]); self.optimizer.load_state_dict(state["optimizer"])


api.init()
final = api.train(Regression(), epochs=3, batch_size=16, checkpoint_interval=10)
print(f"FINAL {final['eval_loss']:.6f}", flush=True)
'''


def test_a_users_own_workload_runs_in_the_built_in_loop(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(OWN_WORKLOAD_SCRIPT)
    ckpt = tmp_path / "ckpt"
    with Store() as store:
        agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=2, checkpoint_dir=ckpt,
                            trainer_args=["--script", str(script)])
        assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    final = result(agent.text())
    assert final is not None and final["world_size"] == 2 and final["eval_loss"] < 0.5, agent.text()[-2000:]
    assert json.loads((ckpt / "model" / "metadata.json").read_text())["workload"] == "regression"
    evaluation = json.loads((tmp_path / "a.termination-log").read_text())["ludusEvaluation"]
    assert evaluation["objective"] == {"metric": "eval_loss", "goal": "minimize"}
    assert evaluation["latest"]["eval_loss"]["value"] == round(final["eval_loss"], 6)
