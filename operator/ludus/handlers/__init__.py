"""Kopf handlers: thin glue that feeds the controller's work queue.

Importing this package registers every handler with Kopf.
"""

from ludus.handlers import lifecycle, pods, trainingjobs

__all__ = ["lifecycle", "pods", "trainingjobs"]
