"""Kopf handlers: thin glue that feeds the controller's work queue.

Importing this package registers every handler with Kopf. Pods have none: the
operator follows them with its own watch (`ludus.runtime.podwatch`), Kopf only the jobs.
"""

from ludus.handlers import continuous, lifecycle, sweep, trainingjob

__all__ = ["continuous", "lifecycle", "sweep", "trainingjob"]
