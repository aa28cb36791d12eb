"""The TrainingJob's logic, pure: no API calls, no Kopf, no asyncio (import-linter holds that).

- `reconcile`: what one pass wants done (pods, Service, policy, Workload) from the job and its pods;
- `policies/`: the rules a job lives by, one small module each, applied in order by `reconcile`;
- `status`: `compute_status`, the one place a job's status is computed;
- `observe`: what a pod tells (phase, exit, rank, termination message), bounded and validated;
- `progress`: the metrics page worker 0 serves, parsed;
- `goodput`: where a job's time went;
- `queueing`: Kueue's Workload read into a step (wait, admit, suspend);
- `objective`: what "better" means: the one objective parse, resolution and comparison;
- `child`: a TrainingJob another resource owns (a Sweep trial, a ContinuousTraining run), built and read back.
"""
