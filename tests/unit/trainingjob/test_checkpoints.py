"""status.checkpoint: what the trainer reports of its newest complete checkpoint, located by the spec."""

from __future__ import annotations

from prometheus_client import generate_latest

from ludus.sdk.render import checkpoint_line
from ludus.trainingjob.checkpoints import newest_checkpoint
from ludus.trainingjob.progress import ProgressSample, parse_progress
from tests.factories import make_job


def _reported(step: int, size: int, at: float) -> ProgressSample:
    """The page ludus_trainer.metrics serves after a checkpoint, as the operator parses it."""
    from ludus_trainer.metrics import TrainerMetrics

    metrics = TrainerMetrics(job="j", rank=0)
    metrics.step(step + 3, 1, 0.25, 100.0, None)
    metrics.newest_checkpoint(step, size, at)
    sample = parse_progress(generate_latest(metrics.registry).decode())
    assert sample is not None
    return sample


def test_object_storage_names_the_committed_prefix_and_describe_shows_it() -> None:
    job = make_job().spec(checkpoint={"uri": "s3://ckpts/team-a/run/", "secretRef": {"name": "s3"}}).build()
    status = newest_checkpoint(job, _reported(40, 3 * 1024 * 1024, 1_796_000_000.7))
    assert status is not None
    assert (status.step, status.uri, status.size_bytes) == (40, "s3://ckpts/team-a/run/ckpt-000000000040", 3145728)
    assert status.time is not None and status.time.isoformat() == "2026-11-30T00:53:20+00:00"
    assert checkpoint_line(status) == ("step 40 at s3://ckpts/team-a/run/ckpt-000000000040 "
                                       "(3.0 MiB, 2026-11-30 00:53:20Z)")


def test_a_claim_names_the_file_and_a_poll_without_a_report_keeps_it() -> None:
    job = make_job().spec(checkpoint={"claimName": "ckpts", "subPath": "runs/a"}).build()
    status = newest_checkpoint(job, _reported(20, 512, 1_796_000_000.0))
    assert status is not None and status.claim_name == "ckpts"
    assert status.path == "/checkpoints/runs/a/ckpt-000000000020.pt"
    restarted = job.model_copy(update={"status": job.status.model_copy(update={"checkpoint": status})})
    assert newest_checkpoint(restarted, ProgressSample(step=3)) is status  # not saved yet: where it resumes from
    assert newest_checkpoint(restarted, _reported(20, 512, 1_796_000_000.0)) is status  # unchanged: no new write


def test_checkpoints_in_the_pods_own_disk_are_no_place_to_resume_from() -> None:
    assert newest_checkpoint(make_job().build(), _reported(20, 512, 1_796_000_000.0)) is None


def test_what_a_pod_reports_is_bounded() -> None:
    """Negative sizes, a step beyond JSON integers, a time far in the future: left out, not written."""
    page = ("ludus_trainer_step{job=\"j\",rank=\"0\"} 5\n"
            "ludus_trainer_checkpoint_step{job=\"j\",rank=\"0\"} 1e300\n")
    sample = parse_progress(page)
    assert sample is not None and sample.checkpoint is None
    page = ("ludus_trainer_step{job=\"j\",rank=\"0\"} 5\nludus_trainer_checkpoint_step{job=\"j\",rank=\"0\"} 4\n"
            "ludus_trainer_checkpoint_bytes{job=\"j\",rank=\"0\"} -1\n"
            "ludus_trainer_checkpoint_committed_timestamp_seconds{job=\"j\",rank=\"0\"} 1e20\n")
    sample = parse_progress(page)
    assert sample is not None and sample.checkpoint == (4, None, None)


def test_the_last_save_after_the_last_poll_comes_from_worker_0s_termination_message() -> None:
    """The final checkpoint is committed as the pods end, usually after the last metrics poll."""
    from ludus.trainingjob.observe import observe_pod

    def worker0(message: str) -> list:
        return [observe_pod({"metadata": {"name": "j-worker-0", "uid": "u0", "labels": {
            "ludus.dev/role": "worker", "ludus.dev/replica-index": "0", "ludus.dev/job-name": "j"}},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "trainer", "state": {
                "terminated": {"exitCode": 0, "message": message}}}]}})]

    job = make_job().spec(checkpoint={"uri": "s3://ckpts/run", "secretRef": {"name": "s3"}}).build()
    pods = worker0('{"ludusEvaluation":{"checkpoint":{"step":330,"sizeBytes":747341,"time":1796000000.5}}}')
    status = newest_checkpoint(job, _reported(320, 700000, 1_795_999_990.0), pods)
    assert status is not None and (status.step, status.size_bytes) == (330, 747341)
    assert status.uri == "s3://ckpts/run/ckpt-000000000330"
    hostile = worker0('{"ludusEvaluation":{"checkpoint":{"step":-5,"sizeBytes":"x","time":true}}}')
    assert newest_checkpoint(job, None, hostile) is None
    assert newest_checkpoint(job, _reported(320, 1, 1.0), hostile).step == 320
