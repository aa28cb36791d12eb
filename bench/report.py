"""Write docs/benchmarks.md from the JSON results under docs/benchmarks/ (`make bench-report`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(stat: dict) -> str:
    return f"{stat['median']} (min {stat['min']}, max {stat['max']}, n={len(stat['runs'])})"


def render() -> str:
    out = ["# Benchmarks", "",
           "Measured, never asserted: tests check behaviour, these files record speed. Each section names the",
           "command that produced it; the raw results are the JSON files beside this page.", ""]
    recovery = _load("recovery.json")
    out += ["## Start-up and recovery on real pods", ""]
    if recovery:
        m = recovery["machine"]
        out += [f"Command: `{recovery['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB "
                f"({m['platform']}); Kubernetes {recovery['versions']['KUBERNETES_VERSION']}, "
                f"checkpoint every {recovery['checkpoint_interval_steps']} steps. Median of the runs, "
                "after one discarded warm-up.", "",
                "| figure | seconds or steps |", "|---|---|",
                f"| demo job: apply → all workers Running | {_fmt(recovery['demo_job']['apply_to_running_s'])} s |",
                f"| demo job: apply → Succeeded | {_fmt(recovery['demo_job']['apply_to_succeeded_s'])} s |",
                f"| worker 0 pod deleted → training resumed | {_fmt(recovery['worker0_deleted']['delete_to_resumed_s'])} s |",
                f"| … steps redone (negative: the SIGTERM checkpoint kept steps made after the delete) | "
                f"{_fmt(recovery['worker0_deleted']['steps_redone'])} |",
                f"| local torchrun agent SIGKILLed → resumed | {_fmt(recovery['local_agent_killed']['kill_to_resumed_s'])} s |",
                f"| … steps redone (SIGKILL: no chance to checkpoint; at most one interval) | "
                f"{_fmt(recovery['local_agent_killed']['steps_redone'])} |", "",
                "A deleted pod gets SIGTERM: torchrun passes it on, the trainer checkpoints at its next stop check",
                "and exits; the operator replaces the pod and the group re-forms around the shared checkpoint volume.",
                "A SIGKILLed agent (the local case) cannot checkpoint, so the survivors resume from the last",
                "interval checkpoint.", ""]
    else:
        out += ["Not measured yet: run `make bench-recovery`.", ""]
    out += ["## GPT throughput: Ludus harness versus a bare loop", ""]
    for name, label in (("throughput-gpu.json", "GPU"), ("throughput-cpu.json", "CPU")):
        data = _load(name)
        if not data:
            out += [f"{label}: not measured yet (`make bench-throughput` on a machine with "
                    f"{'an NVIDIA GPU' if label == 'GPU' else 'no GPU'}).", ""]
            continue
        model = data["model"]
        out += [f"{label}: `{data['command']}` on {data['device']}, torch {data['torch']}; model "
                f"{model['params_millions']}M parameters (d={model['d_model']}, layers={model['n_layers']}, "
                f"seq={model['seq_len']}, batch={model['batch_size']}, {model['dtype']}).", "",
                "| arm | tokens/s | MFU |", "|---|---|---|",
                f"| bare loop | {data['bare_tokens_per_s']} | {data['mfu_bare'] if data['mfu_bare'] is not None else 'n/a'} |",
                f"| Ludus harness | {data['ludus_tokens_per_s']} | {data['mfu_ludus'] if data['mfu_ludus'] is not None else 'n/a'} |",
                "", f"Harness overhead: {data['harness_overhead'] * 100:.2f}% (target < 3%); runs (tokens/s): "
                f"bare {data.get('runs', {}).get('bare')}, Ludus {data.get('runs', {}).get('ludus')}. A negative "
                "overhead is run-to-run noise: the harness syncs with the device only on logged steps.", ""]
    return "\n".join(out)


def main() -> int:
    (REPO / "docs" / "benchmarks.md").write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
