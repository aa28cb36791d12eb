"""spec.init.fromJob on the real API server: a job waits for the model it starts from, then mounts it
from the other job's claim, and keeps it pinned after that job is gone."""

from __future__ import annotations

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.integration.test_continuous import CLAIM, claim  # noqa: F401 - the fixture

INIT_SOURCE = "InitSourceReady"


def condition(k: Kubectl, name: str, type_: str) -> dict | None:
    return next((x for x in (k.json("tj", name).get("status") or {}).get("conditions", []) if x["type"] == type_),
                None)


def test_both_or_neither_source_is_refused_by_the_api_server(k: Kubectl) -> None:
    both = make_job("both").workers(1).spec(init={"claimName": CLAIM, "fromJob": "pretrain"}).manifest()
    refused = k.apply(both, check=False)
    assert refused.returncode != 0 and "exactly one of claimName" in refused.stderr, refused.stderr


def test_a_job_waits_for_its_source_then_starts_from_it_and_keeps_the_pin(
        k: Kubectl, operator: OperatorProcess, claim: str) -> None:  # noqa: F811
    k.apply(make_job("finetune").workers(1).on_fake_nodes()
            .spec(init={"fromJob": "pretrain", "strict": False}).manifest())
    waiting = wait_for(lambda: condition(k, "finetune", INIT_SOURCE), what="the wait explained")
    assert waiting["status"] == "False" and "no TrainingJob pretrain" in waiting["message"]
    assert not k.items("pod", "ludus.dev/job-name=finetune")
    k.apply(make_job("pretrain").workers(1).on_fake_nodes()
            .spec(checkpoint={"claimName": claim, "subPath": "runs/pretrain"}).manifest())
    wait_for(lambda: "pretrain is Running" in (condition(k, "finetune", INIT_SOURCE) or {}).get("message", ""),
             what="waiting for pretrain to succeed")
    k.run("annotate", "pod", "pretrain-worker-0", "ludus.dev/kwok-exit-code=0")
    wait_for(lambda: (k.json("tj", "finetune").get("status") or {}).get("phase") == "Running", what="finetune runs")
    status = k.json("tj", "finetune")["status"]
    assert status["initializedFrom"] == {"job": "pretrain", "claimName": claim, "path": "runs/pretrain/model"}
    assert condition(k, "finetune", INIT_SOURCE)["status"] == "True"
    pod = k.json("pod", "finetune-worker-0")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LUDUS_INIT_FROM"] == "/ludus/init/runs/pretrain/model" and env["LUDUS_INIT_STRICT"] == "false"
    assert {"name": "init-model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}} in \
        pod["spec"]["volumes"]
    waits = [e for e in k.items("events") if e["involvedObject"]["name"] == "finetune"
             and e["reason"] == "InitSourceNotReady"]
    messages = [e["message"] for e in waits]
    # One Event per reason (missing, then pending or running), not one per look every few seconds.
    assert len(messages) >= 2 and len(set(messages)) == len(messages) and all(e.get("count", 1) == 1 for e in waits), \
        [(e["message"][27:60], e.get("eventTime") or e.get("lastTimestamp")) for e in waits]
    # The source goes; a replaced worker still starts from the pinned model.
    k.run("delete", "tj", "pretrain")
    k.run("annotate", "pod", "finetune-worker-0", "ludus.dev/kwok-exit-code=137")
    wait_for(lambda: (k.json("tj", "finetune").get("status") or {}).get("restarts") == 1, what="a restart")
    wait_for(lambda: (k.json("tj", "finetune").get("status") or {}).get("phase") == "Running", what="running again")
    again = k.json("pod", "finetune-worker-0")
    assert {e["name"]: e.get("value") for e in again["spec"]["containers"][0]["env"]}["LUDUS_INIT_FROM"] == \
        "/ludus/init/runs/pretrain/model"


def test_a_source_that_failed_fails_the_job_naming_it(k: Kubectl, operator: OperatorProcess,
                                                      claim: str) -> None:  # noqa: F811
    k.apply(make_job("broken").workers(1).policy("Never").on_fake_nodes().spec(checkpoint={"claimName": claim})
            .manifest())
    wait_for(lambda: (k.json("tj", "broken").get("status") or {}).get("phase") == "Running", what="broken Running")
    k.run("annotate", "pod", "broken-worker-0", "ludus.dev/kwok-exit-code=3")
    wait_for(lambda: (k.json("tj", "broken").get("status") or {}).get("phase") == "Failed", what="broken Failed")
    k.apply(make_job("child").workers(1).on_fake_nodes().spec(init={"fromJob": "broken"}).manifest())
    wait_for(lambda: (k.json("tj", "child").get("status") or {}).get("phase") == "Failed", what="child Failed")
    assert "broken failed, so it exported no model" in condition(k, "child", INIT_SOURCE)["message"]
