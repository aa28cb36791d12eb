"""Write docs/benchmarks.md from the JSON results under docs/benchmarks/ (`make bench-report`)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks"


def _or_na(value: object) -> str:
    return "n/a" if value is None else str(value)


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(stat: dict) -> str:
    return f"{stat['median']} (min {stat['min']}, max {stat['max']}, n={len(stat['runs'])})"


def _m(stat: dict) -> str:
    return f"{stat['median']} ({stat['min']}–{stat['max']})"


def _scale() -> list[str]:
    data = _load("scale.json")
    out = ["## Scale: N TrainingJobs at once, against the API server's ceiling", ""]
    if not data:
        return out + ["Not measured yet: run `make bench`.", ""]
    m, st, v = data["machine"], data["settings"], data["versions"]
    out += [f"Command: `{data['command']}` ({data['date']}, {data['duration_s']} s) on {m['cpus']} CPUs "
            f"({m['cpu_model']}) / {m['memory_gib']} GiB, Python {m['python']}; Kubernetes "
            f"{v['KUBERNETES_VERSION']}, etcd {v['ETCD_VERSION']} ({st['etcd']}), kwok {v['KWOK_VERSION']}, "
            f"kopf {v['kopf']}, aiohttp {v['aiohttp']}.", "",
            f"Each job has {st['workers_per_job']} workers, so {st['pods_per_job']} pods (the workers and the "
            "rendezvous store) and a headless Service. The **operator** arm POSTs the N TrainingJobs "
            "concurrently and ends when every job reports Running; the **ceiling** arm POSTs the very same "
            "Services and pods (rendered by Ludus's builders) from a plain concurrent client and ends when every "
            f"pod is Running. {st['identity']}; kube-scheduler and kube-controller-manager run at "
            f"{st['scheduler_and_controller_manager_qps']} QPS in both; {st['fake_nodes']}. Requests are counted "
            "from the API server's audit log by user agent. "
            + (f"Between arms: {st['between_arms']}; the arms take turns going first. "
               if "between_arms" in st else "")
            + f"One warm-up run per size is discarded; each cell is the median of {st['runs']} runs (min–max).", "",
            "| N jobs | operator: apply → all Running (s) | ceiling: create → all Running (s) | operator / ceiling "
            "| pods/s operator | pods/s ceiling | job → all pods p50 / p99 (s), operator | … ceiling "
            "| operator writes per job | ceiling writes per job | operator peak RSS (MB) | operator CPU (s) "
            "| delete → clean, operator / ceiling (s) | reconcile errors / retries |",
            "|" + "---|" * 14]
    for n, r in sorted(data["results"].items(), key=lambda kv: int(kv[0])):
        op, ce = r["operator"], r["ceiling"]
        out.append(
            f"| {n} | {_m(op['first_apply_to_all_running_s'])} | {_m(ce['first_create_to_all_running_s'])} "
            f"| **{_m(r['operator_over_ceiling'])}** | {op['pods_created_per_s']['median']} "
            f"| {ce['pods_created_per_s']['median']} "
            f"| {op['job_created_to_all_pods_p50_s']['median']} / {op['job_created_to_all_pods_p99_s']['median']} "
            f"| {ce['job_created_to_all_pods_p50_s']['median']} / {ce['job_created_to_all_pods_p99_s']['median']} "
            f"| {_m(op['operator_writes_per_job'])} | {ce['writes_per_job']['median']} "
            f"| {_m(op['operator_peak_rss_mb'])} | {_m(op['operator_cpu_s_to_running'])} "
            f"| {op['delete_to_clean_s']['median']} / {ce['delete_to_clean_s']['median']} "
            f"| {op['reconcile_errors']['max']:g} / {op['reconcile_retries']['max']:g} |")
    out += ["", "Operator requests by verb until every job ran (first measured run, from the audit log):", ""]
    for n, r in sorted(data["results"].items(), key=lambda kv: int(kv[0])):
        counts = ", ".join(f"{k}: {c}" for k, c in r["operator"]["operator_requests_to_running"].items())
        out.append(f"- N={n}: {counts}")
    out += ["", "Per job that is the ceiling's own creates (one Service, the store and the workers) plus the status "
            "patches: one when the job runs (Running, with its Created condition and start time). Changes that can "
            "wait (pod counts, a Pending job's first record) wait until the job's pods have been quiet for 5 s "
            "(`--status-batch-seconds`), and at most 30 s, so a job whose pods sit in the scheduler's queue that "
            "long gets one Pending write before it. CPU is the operator's own, apply → all Running; peak RSS is "
            "the kernel's VmHWM over the whole arm, delete included.", ""]
    out += [
        "What was changed to get here (single development runs on this machine, same harness):",
        "",
        "- From the start: level-based reconcile from `on.event` and Kopf indexes (no `on.create` annotation "
        "patches, no pod list per event), a deduplicating work queue with expectations, Kopf's own Events "
        "posted only at WARNING, children created concurrently through one pooled aiohttp session.",
        "- A status write per pod transition (0/4, 1/4, … 4/4) cost 10.4 writes per job at N=100: pod counts "
        "alone are now batched per job (phase, conditions and restart counts at once), and a first start "
        "posts no Normal Event (the Created and Running conditions hold it; a recovery still does). 8.0 "
        "writes per job at N=100 after.",
        "- py-spy showed a fifth of the operator's CPU in Kopf deep-copying every watch event's body into a "
        "diff base that only on.create/update handlers read; Ludus has none, so it keeps none "
        "(`NoDiffBaseStorage`).",
        "- The creation pass no longer writes a Pending status of its own: a new job's first record waits in "
        "the same 5 s batch as pod counts, and its start time is dated by its oldest pod. At N=500 status "
        "patches per job fell from 3.1 to 2.2 (writes per job 9.1 → 8.2); a 10 s window gave 1.7 (7.7) "
        "but no faster runs, so the default stays 5 s.",
        "- Watch events decode with orjson instead of the standard library (`ludus/runtime/fastjson.py`; Kopf's "
        "stream decoder was the largest single frame in py-spy): operator CPU to Running 13.5 → 12.5 s, "
        "operator/ceiling 1.52 → 1.44 at N=500.",
        "- gc callbacks showed 9.0 of the operator's ~13 CPU seconds in CPython's cyclic garbage collector: "
        "every watch event allocates hundreds of containers, the default threshold (700) rescanned them "
        "while Kopf still held them, and full collections ran as Kopf's per-object state grew. The "
        "operator now freezes its start-up objects and uses a young threshold of 50 000 (`tune_gc`): GC "
        "4.5 s, CPU to Running 10.4 s, operator/ceiling 1.32 at N=500, "
        "peak RSS unchanged (155 MB median at N=500, 154 before). "
        "Collecting on a clock instead (gc disabled, gen-1 every 5 s) cost the same 4.5 s in 0.4 s pauses, "
        "so the threshold stayed.",
        "- After that, about a quarter of the operator's CPU was Kopf's per-event machinery for pods: a "
        "per-object worker and two handler invocations (index and event) per pod event, each with its "
        "kwargs and loggers. Pods now skip Kopf: `ludus/runtime/podwatch.py` lists and watches them itself "
        "(informer semantics: resume from the last resourceVersion, relist on 410 or error, the relist's "
        "difference queues every job it touched) and files each event under its job with one dict update. "
        "At N=500 (single runs): operator CPU to Running 11.3 → 6.1 s, peak RSS 138 → 95 MB, "
        "operator/ceiling 1.36 → 1.03 (1.19 in the warm-up). Kopf still follows the TrainingJobs.",
        "- Batched status changes now wait for the job's pods to be quiet for 5 s (capped at 30 s) rather "
        "than for 5 s after first sight: a job whose pods move steadily until it runs costs one status "
        "write. At N=500 status patches per job fell from 2.2 to 1.8. The rest are jobs whose pods sit in "
        "the scheduler's queue for more than 5 s: they are shown Pending with their counts, which is what "
        "a user watching `kubectl get tj` during a burst should see, so that write stays.",
        "- The bench harness now starts each arm only once the previous arm's namespace is gone (then 3 s): "
        "before, an arm could start while the namespace controller was still deleting the last arm's "
        "namespace and its thousands of Events. In the full run just before this change the operator arm "
        "took 36.4 / 44.8 / 31.3 / 43.9 s at N=500 (warm-up first; the slow runs were the ones where it "
        "went first, right after the previous operator arm); in the run above, 32.0 / 33.0 / 32.8 / 33.2 s.",
        "- The remaining gap to the ceiling is mostly the API server's: the operator arm also creates "
        "the N TrainingJobs (schema and CEL validation), writes their status and serves one more watch. "
        "The operator's own CPU is spread thin: job events through Kopf, TLS reads, request building, "
        "the reconcile passes.",
        "",
    ]
    return out


def _interleaved_table(inter: dict) -> list[str]:
    """Two operators' runs from bench/interleave.py, a row per build."""
    out = ["| build | apply → all Running (s), each run | operator CPU to Running (s), each run "
           "| CPU with the delete (s), median | writes per job, median |", "|---|---|---|---|---|"]
    for build in ("before", "after"):
        rows = [r for r in inter["runs"] if r["build"] == build]
        out.append(f"| {build} | {', '.join(str(r['apply_to_all_running_s']) for r in rows)} "
                   f"| {', '.join(str(r['operator_cpu_s_to_running']) for r in rows)} "
                   f"| {round(inter[build]['operator_cpu_s_with_delete'], 2)} "
                   f"| {round(inter[build]['writes_per_job'], 2)} |")
    return out


def _restructure_check() -> list[str]:
    """N=500 on one day: the operator before the restructure, after it with orjson patched into Kopf,
    and after it without (what ships)."""
    arms = [(label, _load(name)) for label, name in (
        ("before the restructure (33da10e)", "scale-500-before-restructure.json"),
        ("after, orjson patched into Kopf's watch decoder", "scale-500-kopf-orjson.json"),
        ("after, Kopf's own json (shipped)", "scale-500-kopf-stdlib.json"),
        ("after, Kopf's own json, run again later", "scale-500-after-rerun.json"),
    )]
    present = [(label, data) for label, data in arms if data]
    if not present:
        return []
    out = ["## N=500 after the restructure, and Kopf's JSON decoder re-measured", "",
           "The operator's core was restructured (one status module, pure policies, the controller split) "
           "and, since pods no longer go through Kopf (only TrainingJobs: a few small events per job), the "
           "orjson patch of Kopf's private API module was measured again. The three builds ran the same "
           "harness on the same day, one after the other; each cell is the median of the runs (min–max) "
           "after one discarded warm-up. The machine was slower and noisier that day than for the table "
           "above: the ceiling arm alone took the times in the last column.", "",
           "| build | command | operator / ceiling | operator CPU to Running (s) | peak RSS (MB) "
           "| writes per job | reconcile errors | ceiling: create → all Running (s) |",
           "|---|---|---|---|---|---|---|---|"]
    for label, data in present:
        assert data is not None
        r = data["results"]["500"]
        op = r["operator"]
        out.append(f"| {label} | `{data['command']}` | {_m(r['operator_over_ceiling'])} "
                   f"| {_m(op['operator_cpu_s_to_running'])} | {_m(op['operator_peak_rss_mb'])} "
                   f"| {_m(op['operator_writes_per_job'])} | {op['reconcile_errors']['max']} "
                   f"| {_m(r['ceiling']['first_create_to_all_running_s'])} |")
    out += ["", "The patch reached into `kopf._cogs.clients.api`, a private module, and its arm is no better "
            "than the one without it, so it is removed; orjson still decodes the operator's own pod watch "
            "and responses (`ludus/runtime/fastjson.py`).", ""]
    inter = _load("scale-500-interleaved.json")
    if inter:
        out += ["Separate runs drift with the machine (the ceiling alone moved by a fifth between them), so the "
                "two operators were also run interleaved on one cluster in one session, in the order "
                f"{', '.join(inter['order'])} (`{inter['command']}`):", "", *_interleaved_table(inter)]
        cpu = {b: statistics.median(r["operator_cpu_s_to_running"] for r in inter["runs"] if r["build"] == b)
               for b in ("before", "after")}
        change = cpu["after"] / cpu["before"] - 1
        out += ["", f"Interleaved, the operator's CPU to Running changed by {change:+.0%} (median "
                f"{cpu['before']:.2f} → {cpu['after']:.2f} s); the separate runs above differ by more than that "
                "because the machine's own speed moved between them.", ""]
    return out


def _after_status_fields() -> list[str]:
    """N=500 again once status carries progress, evaluation and goodput (and sweeps and continuous
    training run in the operator): do the writes per job until Running rise?"""
    data = _load("scale-500-with-progress.json")
    if not data:
        return []
    r = data["results"]["500"]
    op = r["operator"]
    return ["## N=500 with progress, evaluation and goodput in status", "",
            f"Command: `{data['command']}` ({data['date']}), the same harness as above, after the TrainingJob's "
            "status gained progress, evaluation and goodput and the operator gained the Sweep and "
            "ContinuousTraining controllers.", "",
            "| writes per job until Running | status patches per job | reconcile errors | operator peak RSS (MB) |",
            "|---|---|---|---|",
            f"| {_m(op['operator_writes_per_job'])} | {_m(op['status_patches_per_job'])} "
            f"| {op['reconcile_errors']['max']} | {_m(op['operator_peak_rss_mb'])} |", "",
            "Writes per job until Running did not rise (7.74 here; 7.73–7.79 in every N=500 run above): a "
            "job's progress is written only once it runs, and its first status still waits for its pods to "
            "be quiet. Its times and CPU are not compared with the tables above: a Go build ran on the same 2 "
            "CPUs during its measured runs (for the record, apply → all Running "
            f"{_m(op['first_apply_to_all_running_s'])} s, the ceiling "
            f"{_m(r['ceiling']['first_create_to_all_running_s'])} s). "
            "Peak RSS rose from about 100 MB to about 190 MB. Measured at import, before any job: the "
            "operator's modules take 104 MB; this virtual environment also holds the SDK's `kubernetes` "
            "client, which Kopf imports whenever it is installed (+38 MB; the operator image has none); "
            "Optuna, for sweeps, is about 30 MB of the 104.", ""]


def _layout_check() -> list[str]:
    """Issue 29's refactor (a folder per kind, one worker loop, status computed in one place, children read
    as models): the operator of the commit before it and the one after, interleaved at N=500."""
    inter = _load("scale-500-interleaved-layout.json")
    if not inter:
        return []
    out = ["## N=500 after the operator was laid out by resource kind", "",
           f"Command: `{inter['command']}` ({inter['date']}), on 2 CPUs: the operator of the commit before the "
           "refactor (`before`) and after it, alternating on one cluster in one session in the order "
           f"{', '.join(inter['order'])}, after one discarded warm-up arm.", "", *_interleaved_table(inter)]
    cpu = {b: inter[b]["operator_cpu_s_to_running"] for b in ("before", "after")}
    before_runs = [r["operator_cpu_s_to_running"] for r in inter["runs"] if r["build"] == "before"]
    out += ["", f"The operator's CPU to Running changed by {cpu['after'] / cpu['before'] - 1:+.1%} (median "
            f"{cpu['before']:.2f} → {cpu['after']:.2f} s), less than the two `before` runs differ from each other "
            f"({min(before_runs):.2f}–{max(before_runs):.2f} s); writes per job are the same. The machine was "
            "slower that day than for the tables above (a median of 56 and 58 s to all Running, against 37 in "
            "the earlier interleaved run), so only the two rows of this table compare with each other.", ""]
    return out


def _progress() -> list[str]:
    data = _load("progress.json")
    out = ["## Progress at scale: N Running jobs reporting a moving step", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-progress`.", ""]
    r, m = data["result"], data["machine"]
    out += [f"Command: `{data['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB ({m['platform']}); "
            f"Kubernetes {data['versions']['KUBERNETES_VERSION']}. {r['jobs']} jobs × {r['workers_per_job']} "
            f"workers on kwok nodes; one local server plays every worker 0 (step +10/s); the operator runs "
            f"with --progress-interval={r['progress_interval_s']:g}; measured for {r['measured_s']:g} s after every "
            "job was Running and had been polled.", "",
            "| figure | value |", "|---|---|",
            f"| jobs whose status.progress was written | {r['jobs_with_progress_in_status']} of {r['jobs']} |",
            f"| status writes per minute (all jobs) | {r['status_writes_per_minute']} "
            f"(bound: {r['bound_writes_per_minute']}) |",
            f"| status writes per job per minute | {r['status_writes_per_job_per_minute']} |",
            f"| all operator writes per minute | {r['all_writes_per_minute']} |",
            f"| operator CPU seconds per minute | {r['operator_cpu_s_per_minute']} |",
            f"| operator peak RSS | {r['operator_peak_rss_mb']} MB |",
            f"| operator writes per job until Running | {r['writes_per_job_to_running']} |",
            f"| reconcile errors | {r['reconcile_errors']:g} |", ""]
    return out


def _sweep() -> list[str]:
    data = _load("sweep.json")
    out = ["## Sweeps on simulated nodes", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-sweep`.", ""]
    gap, cost, m = data["result"]["gap"], data["result"]["cost"], data["machine"]
    g = gap["gap_s"]
    out += [f"Command: `{data['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB ({m['platform']}); "
            f"Kubernetes {data['versions']['KUBERNETES_VERSION']}. Trials are TrainingJobs of one worker on kwok "
            "nodes; the bench plays the trainers (it writes each trial's evaluation into its status and ends its "
            "pod as soon as the trial is Running). TPE over two parameters.", "",
            "| figure | value |", "|---|---|",
            f"| trial N's pod ended → trial N+1's first pod created (parallelTrials 1, {g['n']} gaps) | "
            f"median {g['median']} s, p90 {g['p90']} s, max {g['max']} s (target < 2 s) |",
            f"| {cost['trials']}-trial sweep, {cost['parallel_trials']} at a time: wall time | {cost['wall_s']} s |",
            f"| … operator CPU seconds (whole sweep) | {cost['operator_cpu_s']} |",
            f"| … operator peak RSS | {cost['operator_peak_rss_mb']} MB |",
            f"| … sweep passes, mean duration (API calls included) | {cost['sweep_passes']:g} passes, "
            f"{cost['mean_sweep_pass_ms']} ms |",
            f"| … most trials running at once (bench's watch) | {cost['most_running_seen']} |",
            f"| … outcome | {cost['phase']}, {cost['succeeded']} trials succeeded |", ""]
    return out


def _multicluster() -> list[str]:
    data = _load("multicluster.json")
    out = ["## MultiKueue: apply on the manager to Running on the worker", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-multicluster`.", ""]
    r, m = data["result"], data["machine"]
    w, back = r["apply_to_worker_running_s"], r["apply_to_manager_copy_running_s"]
    out += [f"Command: `{data['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB ({m['platform']}), "
            f"{data['date']}; Kubernetes {data['versions']['KUBERNETES_VERSION']}, Kueue "
            f"{data['versions']['KUEUE_VERSION']}. Two control planes on this host (devcluster/multicluster.py), "
            "each with its own Kueue and a `ludus operator` process; "
            f"{r['jobs']} TrainingJobs of one kwok worker each, created on the manager at once.", "",
            "| figure | median | p90 | max |", "|---|---|---|---|",
            f"| apply on the manager → Running on the worker | {w['median']} s | {w['p90']} s | {w['max']} s |",
            f"| apply on the manager → the manager's copy says Running | {back['median']} s | {back['p90']} s | "
            f"{back['max']} s |", "",
            f"All {r['running_on_worker']} Running on the worker {r['all_running_on_worker_s']} s after the first "
            f"create; operator CPU seconds: manager {r['operator_cpu_s']['manager']}, worker "
            f"{r['operator_cpu_s']['worker']}.", "",
            "The first job runs on the worker in a few seconds; the rest queue behind MultiKueue's dispatch, which",
            "writes each job's Workload and copy to the worker through clients Kueue v0.17 builds from the",
            "kubeconfig with no rate limit of their own (client-go's default then applies: 5 requests/s, burst",
            "10), and copies each status back the same way. The Ludus operators use about 3 CPU seconds each.", ""]
    return out


def _checkpoint_save() -> list[str]:
    data = _load("checkpoint-save.json")
    out = ["## Checkpoint saves: how long training waits, a local claim versus object storage", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-checkpoint`.", ""]
    m = data["machine"]
    out += [f"Command: `{data['command']}` on {m['cpus']} CPUs ({m['platform']}), {data['date']}, torch "
            f"{data['torch']}; medians of {data['repeats']} saves each, the arms alternating. The gpt workload's "
            "model and AdamW state on the CPU, one process, saved by the trainer's own code to a local directory "
            "(`claim`), straight to the S3 server (`s3-direct`), and as a job with `checkpoint.uri` does: to the "
            "pod's own disk, then uploaded and committed in the background (`s3-staged`). The S3 server is "
            "SeaweedFS on this host.", "",
            "| model | checkpoint | claim: training waits | s3-direct: training waits | s3-staged: training "
            "waits | s3-staged: committed after |", "|---|---|---|---|---|---|"]
    for label, r in data["results"].items():
        out.append(f"| {label} ({r['params_millions']} M parameters) | {r['checkpoint_mib']} MiB | "
                   f"{r['claim']['blocked_s']} s | {r['s3-direct']['blocked_s']} s | {r['s3-staged']['blocked_s']} s "
                   f"| {r['s3-staged']['committed_s']} s |")
    return out + ["", "Staged, training waits for torch.distributed.checkpoint's write to the pod's disk: about "
                  "1.6-1.9x the claim's single torch.save (it fsyncs each file and writes a metadata file as well), "
                  "and a fifth to a quarter of writing straight to the store; the upload and the commit take the rest "
                  "of the direct time, while training goes on. A job's last save, and a SIGTERM's, wait for the "
                  "commit.", ""]


def _memory() -> list[str]:
    data = _load("memory.json")
    out = ["## The operator's memory at its documented limits", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-memory`.", ""]
    r, m = data["result"], data["machine"]
    limits = r["documented_limits"]
    out += [f"Command: `{data['command']}` on {m['cpus']} CPUs / {m['memory_gib']} GiB ({m['platform']}), "
            f"{data['date']}. Suspended TrainingJobs (no pods: the objects' own cost), each reconciled once; "
            "RSS read once the operator settled. The largest spec is one the CRD's bounds admit in one field "
            f"(`args`: 256 × 4096 characters, {r['largest_spec_bytes'] / 2**20:.2f} MiB of JSON). The documented "
            "limits are the estimate's inputs: a platform that lets tenants make more objects, or larger ones, "
            "sizes the operator's memory from the two slopes, and bounds the counts with a ResourceQuota.", "",
            "| figure | value |", "|---|---|",
            f"| operator RSS, idle | {r['idle_rss_mb']} MB |",
            f"| … after {r['typical_jobs']} ordinary jobs | {r['after_typical_rss_mb']} MB "
            f"({r['mb_per_typical_job'] * 1024:.1f} KB per job) |",
            f"| … after {r['largest_jobs']} more of the largest size | {r['after_largest_rss_mb']} MB "
            f"({r['mb_per_largest_job']} MB per job) |",
            f"| … peak over the run | {r['peak_rss_mb']} MB |",
            *([f"| what the job index keeps (`slim_job`, tracemalloc) | {r['index_kb_per_typical_job']} KB per "
               f"ordinary job, {r['index_mb_per_largest_job']} MB per largest |"] if "index_kb_per_typical_job" in r
              else []),
            f"| estimated at the documented limits ({limits['jobs']} ordinary jobs and {limits['of_them_largest']} "
            f"of the largest size) | **{r['estimated_rss_at_limits_mb']} MB** of the chart's "
            f"{r['chart_limit_mb']} MiB |", ""]
    return out


def _timeline() -> list[str]:
    data = _load("demo-timeline.json")
    out = ["## The demo job, apply to Succeeded", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-demo`.", ""]
    out += [f"Command: `{data['command']}` on {data['machine']['cpus']} CPUs ({data['date']}); the digits example "
            "(2 pods × 2 processes, ~330 steps with a 30 ms step delay so that progress can be watched). Times in "
            "seconds since `kubectl apply`, as the demo saw them (status polled every 0.2 s, logs followed).", "",
            "| apply | Running | first step | last step | Succeeded |", "|---|---|---|---|---|",
            "| 0 | " + " | ".join(f"{data['timeline'].get(k, float('nan')):.1f}"
                              for k in ("Running", "first step", "last step", "Succeeded")) + " |", "",
            "Where the time from the container's start to the first step goes (rank 0's `LUDUS_STARTUP` marks, "
            "seconds since the container started):", "",
            "| " + " | ".join(data["startup"]) + " |", "|" + "---|" * len(data["startup"]),
            "| " + " | ".join(f"{v:.2f}" for v in data["startup"].values()) + " |", ""]
    if data.get("goodput"):
        g = data["goodput"]
        out += [f"status.goodput of that run: {g['fraction']:.0%} of {g['wallSeconds']:.0f} s productive; badput "
                + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in g["badput"].items() if v["seconds"]) + ".", ""]
    return out


STARTUP_PHASES = (
    ("apply_to_pod_created_s", "`kubectl apply` → worker pods created (the operator)"),
    ("pod_created_to_scheduled_s", "worker 0's pod created → scheduled"),
    ("last_worker_scheduled_after_first_s", "(worker 1 scheduled after worker 0)"),
    ("scheduled_to_sandbox_created_s", "scheduled → pod sandbox created (kubelet, containerd)"),
    ("sandbox_to_container_created_s", "sandbox → trainer container created (init containers, CNI, mounts)"),
    ("container_created_to_started_s", "container created → its first process started (runc)"),
    ("trainer_process_s", "container start → worker process forked (torchrun's agent: Python, torch's import, "
     "its rendezvous)"),
    ("container_started_to_store_ready_s", "(container start → the rendezvous store's pod Ready)"),
    ("trainer_imports_s", "… → the worker's own imports done"),
    ("trainer_rendezvous_s", "… → process group formed"),
    ("trainer_data_s", "… → data, model, optimizer and checkpoint lookup ready"),
    ("trainer_first_step_s", "… → first step done"),
    ("container_started_to_first_step_s", "**container start → first step**"),
    ("apply_to_container_started_s", "**apply → container start**"),
    ("last_exit_to_succeeded_s", "**last trainer exit → `Succeeded`**"),
)


def _startup() -> list[str]:
    data = _load("startup.json")
    out = ["## Where a job's start goes, phase by phase", ""]
    if not data:
        return out + ["Not measured yet: run `make bench-startup`.", ""]
    out += [f"Command: `{data['command']}` on {data['machine']['cpus']} CPUs ({data['date']}, "
            f"{data['machine']['platform']}); the demo's job (digits, 2 pods × 2 processes) on the real node, image "
            "already present. API-server moments are when `kubectl get -w` received each change (tens of ms late); "
            "containerd's are its own nanosecond creation times; the store's Ready has its readiness probe's 2 s "
            "period; the trainer's marks are its own clock from the container's first process. Median (min, max) "
            "of the runs after a discarded warm-up, seconds.", "",
            "| phase | seconds |", "|---|---|"]
    out += [f"| {label} | {_fmt(data['phases'][key])} |" for key, label in STARTUP_PHASES if key in data["phases"]]
    if data.get("agent_imports_s"):
        out += ["", "What torchrun's agent imports before anything else (`python -X importtime` in the trainer image, "
                "cumulative seconds of the costliest top-level packages; the forked workers inherit them):", "",
                "| package | seconds |", "|---|---|"]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in data["agent_imports_s"].items()]
    out += ["", "What these point at (measured, not yet changed; issue #35 acts on them):", "",
            "- Before the container, one worker waits about 1.7 s to be scheduled in every repeated run (which "
            "worker varies); in a fresh namespace both were bound within 10 ms. Unexplained yet: the scheduler "
            "logs nothing at its default verbosity.",
            "- Sandbox to container, about 1.2 s on this node (CNI, the pause container, the mounts), and runc's "
            "start another 0.3-0.6 s.",
            "- The agent's 5.7 s hold torch's import (2.9 s alone in an idle container) while the other pod's "
            "agent, both pods' workers and the rendezvous store import torch too, on 2 CPUs; the store answers "
            "only after its own import (Ready 4.4 s after the container started), and the agents' rendezvous "
            "needs it.",
            "- The worker's own imports take 1.07 s after the fork although torch is already loaded.",
            "- Data, model and optimizer take 4.1 s for 1,797 small images: DDP's construction is a collective, "
            "so worker 0 waits there for the ranks of the pod started later; how much is waiting and how much "
            "work is what a py-spy profile of each rank must say.",
            "- The last exit to `Succeeded` is 1.2 s (goal: under 1 s)."]
    return out + [""]


def render() -> str:
    out = ["# Benchmarks", "",
           "Measured, never asserted: tests check behaviour, these files record speed. Each section names the",
           "command that produced it; the raw results are the JSON files beside this page.", ""]
    out += _scale()
    out += _restructure_check()
    out += _after_status_fields()
    out += _layout_check()
    out += _progress()
    out += _sweep()
    out += _multicluster()
    out += _checkpoint_save()
    out += _memory()
    out += _timeline()
    out += _startup()
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
                "| worker 0 pod deleted → training resumed | "
                f"{_fmt(recovery['worker0_deleted']['delete_to_resumed_s'])} s |",
                f"| … steps redone (negative: the SIGTERM checkpoint kept steps made after the delete) | "
                f"{_fmt(recovery['worker0_deleted']['steps_redone'])} |",
                "| local torchrun agent SIGKILLed → resumed | "
                f"{_fmt(recovery['local_agent_killed']['kill_to_resumed_s'])} s |",
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
                f"| bare loop | {data['bare_tokens_per_s']} | {_or_na(data['mfu_bare'])} |",
                f"| Ludus harness | {data['ludus_tokens_per_s']} | {_or_na(data['mfu_ludus'])} |",
                "", f"Harness overhead: {data['harness_overhead'] * 100:.2f}% (target < 3%); runs (tokens/s): "
                f"bare {data.get('runs', {}).get('bare')}, Ludus {data.get('runs', {}).get('ludus')}. A negative "
                "overhead is run-to-run noise: the harness syncs with the device only on logged steps.", ""]
    return "\n".join(out)


def main() -> int:
    (REPO / "docs" / "benchmarks.md").write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
