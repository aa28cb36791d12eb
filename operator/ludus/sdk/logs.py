"""Every worker's log lines of one job, as `ludus logs` shows them: a thread per pod's stream into one
queue, pods looked up again (a replaced pod's stream is picked up after a restart)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ludus.api import constants as c


class LogStreams:
    """The streams opened so far; `None` in the queue marks a stream's end."""

    def __init__(self, core: Any, namespace: str, follow: bool, list_pods: Callable[[], Any]) -> None:
        self.core, self.namespace, self.follow, self._list_pods = core, namespace, follow, list_pods
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._streaming: set[str] = set()
        self._open = 0
        self._lock = threading.Lock()

    def idle(self) -> bool:
        """No stream is open and every line was taken."""
        with self._lock:
            return self._open == 0 and self.lines.empty()

    def look(self) -> None:
        """Open a stream for each started worker pod not streamed yet."""
        for pod in sorted(self._list_pods().items, key=lambda p: p.metadata.name):
            if pod.metadata.uid in self._streaming or not _started(pod):
                continue
            self._streaming.add(pod.metadata.uid)
            index = (pod.metadata.labels or {}).get(c.LABEL_REPLICA_INDEX, "?")
            with self._lock:
                self._open += 1
            threading.Thread(target=self._stream, args=(pod.metadata.name, index), daemon=True).start()

    def _stream(self, pod: str, index: str) -> None:
        try:
            if self.follow:
                response = self.core.read_namespaced_pod_log(pod, self.namespace, container=c.CONTAINER_TRAINER,
                                                             follow=True, _preload_content=False)
                for raw in response.stream():
                    for line in raw.decode(errors="replace").splitlines():
                        self.lines.put(f"[worker-{index}] {line}")
            else:
                text = self.core.read_namespaced_pod_log(pod, self.namespace, container=c.CONTAINER_TRAINER)
                for line in str(text).splitlines():
                    self.lines.put(f"[worker-{index}] {line}")
        except (ApiException, HTTPError, OSError):
            pass  # a pod not started yet, or gone: its replacement is picked up next
        finally:
            with self._lock:
                self._open -= 1
            self.lines.put(None)


def _started(pod: Any) -> bool:
    statuses = pod.status.container_statuses or []
    return any(s.state and (s.state.running or s.state.terminated) for s in statuses)
