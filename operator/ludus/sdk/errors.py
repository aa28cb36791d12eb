"""Errors a person can act on, each with the CLI's exit code.

The `kubernetes` client raises ApiException with a JSON body, or urllib3 errors when the
server cannot be reached; `translate` turns both into one of these, naming what to do.
"""

from __future__ import annotations

import json
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_JOB_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TIMEOUT: Final = 3
EXIT_CLUSTER: Final = 4
# Ctrl-C: the shell's convention (128 + SIGINT); the job keeps running unless asked otherwise.
EXIT_INTERRUPTED: Final = 130

INSTALL_HINT: Final = "install it with `kubectl apply -k manifests/` or `helm install ludus charts/ludus`"


class LudusError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code: int = EXIT_USAGE


class Invalid(LudusError):
    """The API server (schema, CEL rules) or the SDK refused a spec."""


class NotFound(LudusError):
    """No such TrainingJob."""


class TooLarge(LudusError):
    """A script or directory too large to travel in a ConfigMap."""


class PermissionDenied(LudusError):
    """RBAC forbids the request."""


class WaitTimeout(LudusError):
    exit_code = EXIT_TIMEOUT


class NotInstalled(LudusError):
    """The cluster has no TrainingJob CRD."""

    exit_code = EXIT_CLUSTER


class Unreachable(LudusError):
    exit_code = EXIT_CLUSTER


def _body(err: Any) -> dict[str, Any]:
    try:
        body = json.loads(getattr(err, "body", None) or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def translate(err: Exception, *, verb: str, resource: str, namespace: str | None, server: str,
              context: str | None, name: str | None = None) -> LudusError:
    """One of the errors above for an ApiException or a connection error."""
    status = getattr(err, "status", None)
    body = _body(err)
    message = str(body.get("message") or getattr(err, "reason", "") or err)
    where = f"namespace {namespace}" if namespace else "all namespaces"
    if status is None or status == 0:
        return Unreachable(f"cannot reach the cluster of context {context or '(current)'} at {server}: "
                           f"{type(err).__name__}")
    if status == 404:
        details = body.get("details") or {}
        if resource.startswith("trainingjobs") and not details.get("name"):
            return NotInstalled(f"Ludus is not installed in this cluster (no TrainingJob API at {server}): "
                                f"{INSTALL_HINT}")
        return NotFound(f"{resource.split('/')[0].rstrip('s')} {name or details.get('name', '')} not found in "
                        f"{where}")
    if status == 403:
        return PermissionDenied(f"forbidden: you may not {verb} {resource} in {where} ({message})")
    if status in (400, 422):
        causes = (body.get("details") or {}).get("causes") or []
        lines = [f"{c.get('field', '')}: {c.get('message', '')}".strip(": ") for c in causes]
        return Invalid("the API server refused the TrainingJob:\n  " + "\n  ".join(lines or [message]))
    if status == 409:
        return Invalid(message)
    if status == 401:
        return PermissionDenied(f"the cluster refused your credentials (context {context or '(current)'})")
    return LudusError(f"{verb} {resource}: HTTP {status}: {message}")
