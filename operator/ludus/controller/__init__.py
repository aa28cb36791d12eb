"""The controller: when to reconcile a job and how a plan reaches the API server.

- `loop`: the TrainingJob controller (`Controller`): what a pass reads, reconciles and writes;
- `worker`: the one worker loop of every kind: the work queue, its workers, retries and their metrics;
- `owner`: what Sweep and ContinuousTraining share (their view of themselves and their children);
- `sweep`, `continuous`: their controllers;
- `batching`: whether a status change is written now or held (pure, injectable clock);
- `written`: read-your-writes over Kopf's lagging job index;
- `expectations`: created children (pods, trial and run jobs) whose watch events have not arrived;
- `apply`: carrying out a plan in the order that loses nothing;
- `transitions`: the metrics of what a write changed.
"""

from ludus.controller.batching import STATUS_BATCH_SECONDS, STATUS_MAX_HOLD_SECONDS
from ludus.controller.loop import Controller, utcnow

__all__ = ["Controller", "STATUS_BATCH_SECONDS", "STATUS_MAX_HOLD_SECONDS", "utcnow"]
