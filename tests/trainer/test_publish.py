"""Publishing a champion on a claim: the link switches in one rename to a verified model, and a
missing or changed model is refused with the link left where it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from ludus_trainer.model_io import export_model
from ludus_trainer.publish import PublishError, publish


def exported(root: Path, run: str, width: int = 8) -> Path:
    return export_model(root / "runs" / run, nn.Linear(4, width), {"job": run, "step": 10})


def test_publish_points_the_link_at_the_run_and_a_reader_sees_the_exact_bytes(tmp_path: Path) -> None:
    first = exported(tmp_path, "ct-0")
    report = publish(tmp_path, "ct-0")
    assert os.readlink(tmp_path / "champion") == "runs/ct-0/model" and report["message"] == "published"
    assert (tmp_path / "champion" / "weights.pt").read_bytes() == (first / "weights.pt").read_bytes()
    assert publish(tmp_path, "ct-0")["message"] == "already published"
    exported(tmp_path, "ct-1", width=16)
    publish(tmp_path, "ct-1")
    assert os.readlink(tmp_path / "champion") == "runs/ct-1/model"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no leftover link


def test_a_changed_or_missing_model_is_refused_and_the_champion_stays(tmp_path: Path) -> None:
    champion = exported(tmp_path, "ct-0")
    publish(tmp_path, "ct-0")
    before = (champion / "weights.pt").read_bytes()
    changed = exported(tmp_path, "ct-1")
    with open(changed / "weights.pt", "ab") as f:
        f.write(b"half-written")
    with pytest.raises(PublishError, match="does not match its metadata"):
        publish(tmp_path, "ct-1")
    with pytest.raises(PublishError, match="exported no model"):
        publish(tmp_path, "ct-9")
    assert os.readlink(tmp_path / "champion") == "runs/ct-0/model"
    assert (tmp_path / "champion" / "weights.pt").read_bytes() == before


def test_the_command_exits_non_zero_with_the_reason_in_its_termination_message(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    env = {**os.environ, "LUDUS_TERMINATION_LOG": str(log)}
    done = subprocess.run([sys.executable, "-m", "ludus_trainer.publish", "--root", str(tmp_path), "--run", "ct-3"],
                          env=env, capture_output=True, text=True, timeout=60)
    report = json.loads(log.read_text())
    assert done.returncode == 1 and "exported no model" in report["error"]
    assert report["reason"] == "NoExportedModel"  # what the ContinuousTraining names in its condition
