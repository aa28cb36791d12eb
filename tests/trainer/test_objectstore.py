"""Checkpoints in object storage, on the real S3 server (SeaweedFS, built from its pinned module) and
real torchrun processes: each rank writes its own shard, a checkpoint counts only once committed, a
save killed before its commit is never loaded and is swept by the next save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from devcluster.agents import Store, progress_steps, result, start_agent, starts, wait_for_step
from devcluster.objectstore import ObjectStore
from devcluster.paths import REPO, free_port
from ludus_trainer.objectstore import ObjectCheckpoints, decode, encode, storage_options

BUCKET = "ludus-checkpoints"

SCRIPT = r'''
import json, os, sys
import torch, torch.distributed as dist, torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter
from ludus_trainer.objectstore import ObjectCheckpoints, checkpoint_prefix, storage_options

dist.init_process_group("gloo")
rank, uri = dist.get_rank(), sys.argv[1]
store = ObjectCheckpoints(uri, keep=2)

def state(step):
    # "shared" and "meta" are the same on every rank (written once, as DCP writes replicated items);
    # "own.<rank>" is each rank's shard alone.
    return {"shared": torch.full((64,), float(step)), f"own.{rank}": torch.full((1000,), float(step * 10 + rank)),
            "meta": json.dumps({"step": step})}

markers = {}
for step, score in ((10, 0.9), (20, 0.1), (30, 0.2)):
    markers[step] = store.save(step, state(step), score=score)
# A save killed after the shards and before its commit: the shards are there, the marker is not.
dcp.save(state(40), storage_writer=FsspecWriter(f"{uri}/{checkpoint_prefix(40)}", single_file_per_rank=True,
                                                overwrite=True, **storage_options(uri)))
dist.barrier()
target = state(0)
loaded = store.load_latest(target)
out = {"rank": rank, "loaded": loaded, "shared": target["shared"][0].item(), "own": target[f"own.{rank}"][0].item(),
       "meta": json.loads(target["meta"]), "steps": store.steps(), "marker30": markers[30]}
store.save(50, state(50), score=0.3)  # the next save sweeps the uncommitted one and prunes the old
dist.barrier()
out["after"] = store.steps()
# Staged as a job saves: both ranks of this "pod" share its disk, each uploads its own part.
from pathlib import Path
staged = ObjectCheckpoints(uri + "-staged", keep=2, staging=Path(sys.argv[2]))
staged.save(60, state(60), wait=True)
dist.barrier()
again = state(0)
out["staged"] = {"loaded": staged.load_latest(again), "own": again[f"own.{rank}"][0].item(), "steps": staged.steps()}
store.fs.invalidate_cache()
out["left"] = {s: store.fs.find(f"{store.root}/{checkpoint_prefix(s)}") for s in (20, 40)}
print("RESULT " + json.dumps(out), flush=True)
dist.destroy_process_group()
'''


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    s3 = ObjectStore(tmp_path_factory.mktemp("objectstore"))
    s3.up()
    s3.make_bucket(BUCKET)
    yield s3
    s3.down()


def test_ranks_write_their_shards_and_only_committed_checkpoints_load(store: ObjectStore, tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT)
    uri = f"s3://{BUCKET}/{tmp_path.name}/job"
    env = {**os.environ, **store.environment(), "PYTHONPATH": str(REPO / "trainer_image")}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), uri, str(tmp_path / "pod-disk")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = {r["rank"]: r for r in (json.loads(line.split(" ", 1)[1]) for line in run.stdout.splitlines()
                                      if line.startswith("RESULT "))}
    assert set(results) == {0, 1}, run.stdout[-2000:]
    for rank, r in results.items():
        assert r["loaded"] == 30, r  # 40 has shards but no commit: never loaded
        assert (r["shared"], r["own"], r["meta"]) == (30.0, 300.0 + rank, {"step": 30}), r
        assert r["steps"] == [30, 20, 10], r  # the newest two and the best scored (10)
        assert r["after"] == [50, 30, 10], r  # 20 pruned; the uncommitted 40 swept
        assert r["left"] == {"20": [], "40": []}, r  # not one object of them is left
        # Two local ranks staging on one pod's disk: each uploaded its own part, rank 0 committed.
        assert r["staged"] == {"loaded": 60, "own": 600.0 + rank, "steps": [60]}, r
    staged = sorted(p.rsplit("/", 1)[1] for p in fs_ls(store, f"{tmp_path.name}/job-staged/ckpt-000000000060"))
    assert staged == [".metadata", ".uploaded-0", ".uploaded-1", "COMMITTED", "__0_0.distcp", "__1_0.distcp"], staged
    marker = results[0]["marker30"]
    assert marker["step"] == 30 and marker["uri"] == f"{uri}/ckpt-000000000030" and marker["sizeBytes"] > 8000
    fs = store.filesystem()
    files = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{BUCKET}/{tmp_path.name}/job/ckpt-000000000030"))
    assert files == [".metadata", "COMMITTED", "__0_0.distcp", "__1_0.distcp"], files  # one shard per rank


def fs_ls(store: ObjectStore, path: str) -> list[str]:
    return [str(p) for p in store.filesystem().ls(f"{BUCKET}/{path}")]


def _check(store: ObjectStore, tmp_path: Path, uri: str, **env: str) -> tuple[int, dict[str, Any]]:
    """`python -m ludus_trainer.storecheck` as a worker's init container runs it: exit code, the error its
    termination message carries."""
    message = tmp_path / f"termination-{len(list(tmp_path.iterdir()))}"
    message.touch()
    run = subprocess.run([sys.executable, "-m", "ludus_trainer.storecheck"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **store.environment(), "LUDUS_CHECKPOINT_URI": uri,
                                           "LUDUS_TERMINATION_LOG": str(message), **env})
    text = message.read_text()
    return run.returncode, (json.loads(text)["ludusEvaluation"]["error"] if text else {})


def test_the_start_up_check_names_each_cause(store: ObjectStore, tmp_path: Path) -> None:
    """A missing bucket, keys the store refuses, an endpoint nobody answers at: each its own reason,
    told in words a user can act on; the job's own store passes and leaves no probe."""
    uri = f"s3://{BUCKET}/{tmp_path.name}/job"
    code, error = _check(store, tmp_path, uri)
    assert (code, error) == (0, {})
    left = store.filesystem().find(f"{BUCKET}/{tmp_path.name}")
    assert not [name for name in left if ".ludus-probe" in name], left

    code, error = _check(store, tmp_path, f"s3://no-such-bucket/{tmp_path.name}")
    assert (code, error["reason"]) == (1, "CheckpointBucketNotFound"), error
    assert "s3://no-such-bucket" in error["message"]

    code, error = _check(store, tmp_path, uri, AWS_SECRET_ACCESS_KEY="not-the-secret")
    assert (code, error["reason"]) == (1, "CheckpointStoreAccessDenied"), error
    assert "not-the-secret" not in error["message"]

    closed = free_port()
    code, error = _check(store, tmp_path, uri, LUDUS_S3_ENDPOINT=f"http://127.0.0.1:{closed}")
    assert (code, error["reason"]) == (1, "CheckpointStoreUnreachable"), error
    assert f"127.0.0.1:{closed}" in error["message"]
    assert "for 12 s" in error["message"], error  # tried again that long, then told


INTERVAL = 20


def test_two_agents_with_no_shared_disk_resume_from_object_storage(store: ObjectStore, tmp_path: Path) -> None:
    """Each agent has its own checkpoint directory (two nodes share no disk): what the survivor of a
    SIGKILLed agent resumes from is the newest committed checkpoint in the bucket."""
    uri = f"s3://{BUCKET}/{tmp_path.name}/digits"
    env = {**store.environment(), "LUDUS_CHECKPOINT_URI": uri}
    args = ["--workload", "digits", "--epochs", "30", "--log-every", "1", "--checkpoint-interval", str(INTERVAL),
            "--step-delay", "0.03"]
    with Store() as rendezvous:
        a, b = (start_agent(name, store=rendezvous, tmp=tmp_path, nnodes=(1, 2), nproc=1,
                            checkpoint_dir=tmp_path / f"disk-{name}", trainer_args=args, extra_env=env)
                for name in ("a", "b"))
        wait_for_step([a, b], 2 * INTERVAL + 7)
        b.kill()
        reached = max(progress_steps(a.text()) + progress_steps(b.text()))
        assert a.wait(timeout=300) == 0, a.text()[-3000:]
    resumed = [s for s in starts(a.text()) if s[0] > 0]
    assert resumed, f"the survivor never resumed from a checkpoint:\n{a.text()[-3000:]}"
    assert 0 <= reached - resumed[-1][0] <= INTERVAL, (reached, resumed)
    final = result(a.text())
    assert final is not None and final["accuracy"] >= 0.95
    assert not list((tmp_path / "disk-a").glob("ckpt-*")), "checkpoints went to the pod's disk"
    objects = ObjectCheckpoints(uri, options=storage_options(uri, store.environment()))
    assert objects.steps() and objects.steps()[0] >= resumed[-1][0]


def test_an_optimizer_resumes_with_its_own_state_keyed_as_it_was(tmp_path: Path) -> None:
    """torch.distributed.checkpoint keeps only string keys: an optimizer's int-keyed state must come back
    int-keyed, attached to its parameters, or Adam's moments are lost on every resume."""
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    store = ObjectCheckpoints(f"file://{tmp_path}/ckpt")
    store.save(7, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": (1, [2, 3])})
    state = store.load_whole(store.steps()[0])
    assert state["step"] == 7 and set(state["optimizer"]["state"]) == {0, 1}
    fresh = torch.nn.Linear(4, 3)
    again = torch.optim.AdamW(fresh.parameters())
    fresh.load_state_dict(state["model"])
    again.load_state_dict(state["optimizer"])
    assert set(again.state) == set(fresh.parameters())  # keyed by the parameters, nothing beside them
    assert torch.equal(again.state[fresh.weight]["exp_avg"], optimizer.state[model.weight]["exp_avg"])
    assert decode(encode({0: {"a": 1}, "b": [1, {2: 3}]})) == {0: {"a": 1}, "b": [1, {2: 3}]}


def test_a_run_without_object_storage_never_imports_its_modules() -> None:
    """The harness's workers are forked from torchrun's agent: what a run imports is time before its first
    step, and torch.distributed.checkpoint's modules made a worker's teardown deadlock 1 run in 4."""
    probe = ("import sys; import ludus_trainer.cli, ludus_trainer.api; "
             "print(sorted(m for m in ('fsspec', 's3fs', 'torch.distributed.checkpoint') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "trainer_image")}
    env.pop("LUDUS_CHECKPOINT_URI", None)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_staged_save_commits_only_once_every_rank_has_uploaded(store: ObjectStore, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's saves go to the pod's disk and are uploaded in the background. Rank 0 commits only when every
    rank's upload marker is in the store: a rank killed mid-upload (here: rank 1 of 2 never uploads) leaves
    the step uncommitted, never loaded, and the next save sweeps it. Training waits only for the local part."""
    import ludus_trainer.objectstore as objectstore

    monkeypatch.setattr(objectstore, "COMMIT_WAIT_SECONDS", 2)
    uri = f"s3://{BUCKET}/{tmp_path.name}/staged"
    committed: list[int] = []
    staged = ObjectCheckpoints(uri, options=storage_options(uri, store.environment()), staging=tmp_path / "stage",
                               on_commit=lambda marker: committed.append(marker["step"]))
    marker = staged.save(10, {"w": torch.arange(4.0)}, wait=True)
    assert marker is not None and marker["step"] == 10 and committed == [10] and staged.steps() == [10]
    assert list((tmp_path / "stage" / "rank-0").iterdir()) == []  # the local copy goes once uploaded

    # Step 20 as rank 0 of a group of 2 whose rank 1 died before uploading its shard.
    local = tmp_path / "stage" / "ckpt-000000000020"
    objectstore.dcp_save(encode({"step": 20, "w": torch.arange(4.0) * 2}),
                         storage_writer=objectstore.FileSystemWriter(local, single_file_per_rank=True))
    staged._upload_then_commit(20, local, world=2, score=None, generation=staged._generation)
    staged.flush()  # rank 0 waited for rank 1's marker, in vain
    assert staged.steps() == [10] and committed == [10]
    fresh = {"w": torch.zeros(4)}
    assert staged.load_latest(fresh) == 10 and torch.equal(fresh["w"], torch.arange(4.0))

    staged.save(30, {"w": torch.arange(4.0) * 3})  # returns at once: the upload goes on in the background
    staged.flush()
    assert staged.steps() == [30, 10] and committed == [10, 30]
    swept = store.filesystem().find(f"{BUCKET}/{tmp_path.name}/staged/ckpt-000000000020")
    assert swept == [], f"the uncommitted step 20 is swept by the next commit: {swept}"


def _digits(store: ObjectStore, tmp_path: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One short digits run under torchrun with its checkpoints (and its export) in object storage."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m",
         "ludus_trainer", "--workload", "digits", "--epochs", "3", "--log-every", "5",
         "--checkpoint-dir", str(tmp_path / name), "--metrics-port", "0"],
        env={**os.environ, **store.environment(), "PYTHONPATH": str(REPO / "trainer_image"),
             "LUDUS_CHECKPOINT_URI": f"s3://{BUCKET}/{tmp_path.name}/{name}", **env},
        capture_output=True, text=True, timeout=300)


def test_a_job_exports_its_model_to_object_storage_and_another_fine_tunes_from_it_by_uri(
        store: ObjectStore, tmp_path: Path) -> None:
    """init.uri (and fromJob of a job with checkpoint.uri): `<uri>/model` holds weights.pt and, written last,
    metadata.json with their SHA-256; the second run downloads them, checks the sum and loads them."""
    first = _digits(store, tmp_path, "pretrain")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    fs = store.filesystem()
    model = f"{BUCKET}/{tmp_path.name}/pretrain/model"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(model)) == ["metadata.json", "weights.pt"]
    metadata = json.loads(fs.cat(f"{model}/metadata.json"))
    second = _digits(store, tmp_path, "finetune", LUDUS_INIT_FROM=f"s3://{model}")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    line = next(x for x in second.stdout.splitlines() if x.startswith("LUDUS_INIT "))
    loaded = json.loads(line.split(" ", 1)[1])
    assert loaded["source"] == f"s3://{model}/weights.pt" and loaded["sha256"] == metadata["sha256"], loaded

    fs.pipe(f"{model}/weights.pt", b"not the weights")  # changed after its metadata was written
    broken = _digits(store, tmp_path, "broken", LUDUS_INIT_FROM=f"s3://{model}")
    assert broken.returncode != 0 and "does not match its metadata" in broken.stdout + broken.stderr


def _exported(store: ObjectStore, tmp_path: Path, base: str, run: str, fill: float) -> str:
    """A run's model as export_model writes it, uploaded where a ContinuousTraining's run puts it."""
    from ludus_trainer.model_io import export_model
    from ludus_trainer.remote_model import upload_model

    model = torch.nn.Linear(64, 64)
    torch.nn.init.constant_(model.weight, fill)
    local = export_model(tmp_path / run, model, {"job": run, "step": 10})
    with pytest.MonkeyPatch.context() as env:
        for key, value in store.environment().items():
            env.setenv(key, value)
        return upload_model(local, f"{base}/runs/{run}/model")


def test_a_champion_in_object_storage_is_a_pointer_put_once_and_a_killed_publish_leaves_the_old_one(
        store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 has no rename: the publisher verifies the run's weights against their metadata, then writes
    champion.json in one PUT. A model changed since its export is refused; a publisher SIGKILLed at any
    moment leaves the old pointer or the new one, and either resolves to a complete, verified model."""
    from ludus_trainer.publish import PublishError, publish_remote
    from ludus_trainer.remote_model import fetch_model, read_pointer

    for key, value in store.environment().items():
        monkeypatch.setenv(key, value)
    base = f"s3://{BUCKET}/{tmp_path.name}/ct"
    models = {run: _exported(store, tmp_path, base, run, fill) for run, fill in (("ct-1", 0.1), ("ct-2", 0.2))}
    assert publish_remote(base, "ct-1")["message"] == "published"
    assert read_pointer(f"{base}/champion.json")["model"] == models["ct-1"]

    tampered = _exported(store, tmp_path, base, "ct-3", 0.3)
    store.filesystem().pipe(tampered.removeprefix("s3://") + "/weights.pt", b"changed since it was evaluated")
    with pytest.raises(PublishError, match="does not match its metadata"):
        publish_remote(base, "ct-3")
    with pytest.raises(PublishError, match="no model at"):
        publish_remote(base, "ct-9")  # exported nothing
    assert read_pointer(f"{base}/champion.json")["model"] == models["ct-1"]

    env = {**os.environ, **store.environment(), "PYTHONPATH": str(REPO / "trainer_image")}
    command = [sys.executable, "-m", "ludus_trainer.publish", "--uri", base, "--run", "ct-2"]
    seen = set()
    for delay in (0.2, 0.5, 0.8, 1.1, 1.4, 1.7, 2.0, 2.5, 3.0, 60.0):
        publisher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            finished = publisher.wait(timeout=delay) == 0
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()
            finished = False
        pointer = read_pointer(f"{base}/champion.json")
        assert pointer is not None and pointer["model"] in (models["ct-1"], models["ct-2"]), pointer
        seen.add(pointer["run"])
        resolved = fetch_model(f"{base}/champion.json", tmp_path / f"read-{delay}")  # checks the SHA-256
        assert json.loads((resolved / "metadata.json").read_text())["job"] == pointer["run"]
        if finished:
            break
    assert finished and read_pointer(f"{base}/champion.json")["run"] == "ct-2" and seen <= {"ct-1", "ct-2"}
