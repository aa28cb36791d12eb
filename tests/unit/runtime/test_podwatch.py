"""The pod index the operator's own watch keeps: events, relists, and which namespaces it covers."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.runtime.podwatch import PodIndex, namespace_filter, watch_scopes


def _pod(name: str, job: str = "digits", namespace: str = "team-a", phase: str = "Pending", uid: str = "") -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{namespace}-{name}",
            "labels": {c.LABEL_JOB_NAME: job, c.LABEL_ROLE: "worker", c.LABEL_MANAGED_BY: c.MANAGED_BY},
        },
        "status": {"phase": phase},
    }


def test_events_file_pods_under_their_job() -> None:
    index = PodIndex()
    assert index.apply("ADDED", _pod("digits-worker-0")) == ("team-a", "digits")
    index.apply("ADDED", _pod("digits-worker-1"))
    index.apply("ADDED", _pod("other-worker-0", job="other"))
    index.apply("MODIFIED", _pod("digits-worker-0", phase="Running"))
    pods = {p.name: p.phase for p in index.pods_of(("team-a", "digits"))}
    assert pods == {"digits-worker-0": "Running", "digits-worker-1": "Pending"}
    assert [p.name for p in index.pods_of(("team-a", "other"))] == ["other-worker-0"]
    assert index.pods_of(("team-b", "digits")) == []


def test_a_deleted_pod_leaves_and_its_replacement_of_the_same_name_stays() -> None:
    index = PodIndex()
    index.apply("ADDED", _pod("digits-worker-0", uid="old"))
    index.apply("ADDED", _pod("digits-worker-0", uid="new"))  # the watch may show the replacement first
    index.apply("DELETED", _pod("digits-worker-0", uid="old"))
    assert [p.uid for p in index.pods_of(("team-a", "digits"))] == ["new"]
    index.apply("DELETED", _pod("digits-worker-0", uid="new"))
    assert ("team-a", "digits") not in index and len(index) == 0


def test_a_pod_without_our_job_label_is_ignored() -> None:
    body = _pod("stray")
    del body["metadata"]["labels"][c.LABEL_JOB_NAME]
    index = PodIndex()
    assert index.apply("ADDED", body) is None and len(index) == 0


def test_a_relist_replaces_its_scope_and_names_the_jobs_that_changed() -> None:
    index = PodIndex()
    before = [
        _pod("a-0", job="a"), _pod("b-0", job="b"), _pod("c-0", job="c"), _pod("x-0", job="x", namespace="team-b"),
    ]
    for body in before:
        index.apply("ADDED", body)
    # While the watch was down: a-0 started running, b-0 was deleted, d-0 was created; c-0 is unchanged.
    listing = [_pod("a-0", job="a", phase="Running"), _pod("c-0", job="c"), _pod("d-0", job="d")]
    changed = index.replace(lambda ns: ns == "team-a", listing)
    assert changed == {("team-a", "a"), ("team-a", "b"), ("team-a", "d")}
    assert [p.phase for p in index.pods_of(("team-a", "a"))] == ["Running"]
    assert index.pods_of(("team-a", "b")) == []
    assert [p.name for p in index.pods_of(("team-b", "x"))] == ["x-0"], "another namespace's pods are kept"


def test_named_namespaces_are_watched_one_by_one_and_globs_cluster_wide() -> None:
    assert watch_scopes(("team-a", "team-b", "team-a")) == ["team-a", "team-b"]
    assert watch_scopes(()) == [None]
    assert watch_scopes(("team-a", "ml-*")) == [None]
    wanted = namespace_filter(("team-a", "ml-*"))
    assert wanted("team-a") and wanted("ml-vision") and not wanted("team-b")
    assert namespace_filter(())("anything")


def test_a_pod_that_cannot_be_read_is_kept_as_unknown_and_counted_not_raised() -> None:
    from ludus.runtime import metrics
    from ludus.runtime.podwatch import PodIndex

    body = {"metadata": {"name": "j-worker-0", "namespace": "ns", "uid": "u1",
                         "labels": {c.LABEL_JOB_NAME: "j", c.LABEL_ROLE: c.ROLE_WORKER, c.LABEL_REPLICA_INDEX: "0"},
                         "ownerReferences": [{"uid": "job-uid", "controller": True}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": c.CONTAINER_TRAINER, "state": {"terminated": {"exitCode": "not a number"}}}]}}
    before = metrics.POD_PARSE_ERRORS._value.get()
    index = PodIndex()
    assert index.apply("MODIFIED", body) == ("ns", "j")
    assert index.apply("MODIFIED", body) == ("ns", "j")
    (pod,) = index.pods_of(("ns", "j"))
    assert (pod.phase, pod.role, pod.index) == ("Unknown", c.ROLE_WORKER, 0)
    # Still its job's pod (so the job can name it), and why it could not be read.
    assert pod.owner_uid == "job-uid"
    assert pod.unreadable.startswith("ValueError: invalid literal for int()")
    assert metrics.POD_PARSE_ERRORS._value.get() == before + 2
