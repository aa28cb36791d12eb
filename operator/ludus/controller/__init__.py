"""The controller: when to reconcile a job and how a plan reaches the API server.

- `loop`: the work queue, its workers and retries (`Controller`);
- `batching`: whether a status change is written now or held (pure, injectable clock);
- `written`: read-your-writes over Kopf's lagging job index;
- `expectations`: created pods whose watch events have not arrived;
- `apply`: carrying out a plan in the order that loses nothing;
- `transitions`: the metrics of what a write changed.
"""

from ludus.controller.batching import STATUS_BATCH_SECONDS, STATUS_MAX_HOLD_SECONDS
from ludus.controller.loop import Controller, utcnow

__all__ = ["Controller", "STATUS_BATCH_SECONDS", "STATUS_MAX_HOLD_SECONDS", "utcnow"]
