"""Checkpoints are atomic: a kill -9 mid-write never leaves a file that loads corrupt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ludus_trainer.checkpoint import CheckpointManager, checkpoint_name


def test_save_keeps_the_last_k_and_loads_the_newest(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (10, 20, 30):
        manager.save(step, {"value": torch.tensor([step])})
    assert manager.steps() == [30, 20]
    state = manager.load_latest()
    assert state is not None and state["step"] == 30 and int(state["value"]) == 30
    assert manager.last_duration is not None and manager.last_saved_at is not None


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"v": 1})
    manager.save(2, {"v": 2})
    (tmp_path / checkpoint_name(2)).write_bytes(b"not a checkpoint")
    state = manager.load_latest()
    assert state is not None and state["step"] == 1


def test_temporary_files_are_never_loaded(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    (tmp_path / f".tmp-{checkpoint_name(99)}.12345").write_bytes(b"half")
    assert manager.load_latest() is None
    manager.save(1, {})
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


WRITER = """
import sys, torch
from ludus_trainer.checkpoint import CheckpointManager
manager = CheckpointManager(sys.argv[1], keep=2)
step = 0
while True:
    step += 1
    manager.save(step, {"weights": torch.full((2_000_000,), float(step))})
    print(step, flush=True)
"""


def test_kill_9_during_writes_never_leaves_a_loadable_corrupt_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(7)
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one checkpoint is complete
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = CheckpointManager(tmp_path, keep=2).load_latest()
        assert state is not None, f"round {round_}: no loadable checkpoint"
        weights = state["weights"]
        assert weights.numel() == 2_000_000 and bool((weights == float(state["step"])).all()), "corrupt contents"


def _run_alone(ckpt: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASTER_", "PET_", "RANK", "WORLD_SIZE"))}
    proc = subprocess.run(
        [sys.executable, "-m", "ludus_trainer", "--workload", "digits", "--epochs", "2",
         "--checkpoint-dir", str(ckpt)],
        env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_a_run_restarted_after_its_final_checkpoint_reports_the_same_evaluation(tmp_path: Path) -> None:
    """torchrun may restart a group after the final save; the rerun must not lose the metrics."""
    import json

    first = _run_alone(tmp_path)
    second = _run_alone(tmp_path)
    results = [json.loads(line.split(" ", 1)[1]) for text in (first, second)
               for line in text.splitlines() if line.startswith("LUDUS_RESULT ")]
    assert len(results) == 2
    assert {"accuracy", "precision", "recall", "f1"} <= results[1].keys()
    assert results[1] == results[0]
    assert "LUDUS_PROGRESS" not in second, "the rerun trained again instead of resuming the finished run"
