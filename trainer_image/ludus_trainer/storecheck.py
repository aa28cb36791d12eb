"""`python -m ludus_trainer.storecheck`: can this pod write the job's checkpoints to object storage?

The operator runs it as each worker's init container when `spec.checkpoint.uri` is set, so a bucket that
does not exist, keys the store refuses or an endpoint nobody answers at are found before any training
time is spent, and named: the termination message carries the cause (`ludusEvaluation.error`), which
the operator turns into the job's condition instead of restarting a worker that cannot save.

The check is what a save needs: the bucket listed with the job's keys, then a probe object written and
deleted under the job's prefix (keys that may read but not write fail here, not at the first save).
An unreachable endpoint is tried again for a few seconds (a store that is starting, a network blip).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ludus_trainer.evaluation import publish_error
from ludus_trainer.s3 import ENDPOINT_ENV, ENV_CHECKPOINT_URI, storage_options

BUCKET_MISSING: Final = "CheckpointBucketNotFound"
ACCESS_DENIED: Final = "CheckpointStoreAccessDenied"
UNREACHABLE: Final = "CheckpointStoreUnreachable"
INVALID: Final = "CheckpointStoreInvalid"
# How long an endpoint that does not answer is tried again before the job is told (well inside the 30 s
# a user waits for a condition).
UNREACHABLE_RETRY_SECONDS: Final = 12.0
EXIT_STORE_PROBLEM: Final = 1


@dataclass(frozen=True)
class StoreProblem:
    """Why the job's checkpoints cannot be written: a condition reason and a message for a person."""

    reason: str
    message: str


def _client_options(uri: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The trainer's own storage options, with short timeouts and no retries of its own: the check says
    "unreachable" within seconds instead of after botocore's backoff."""
    options = storage_options(uri, env)
    options["config_kwargs"] = {"connect_timeout": 3, "read_timeout": 5, "retries": {"max_attempts": 1}}
    options["skip_instance_cache"] = True
    return options


def _unreachable(err: BaseException) -> bool:
    """A connection that failed (refused, timed out, no such host), whatever layer wrapped it."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (BotoConnectionError, EndpointConnectionError, ConnectTimeoutError, socket.gaierror,
                             ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _probe(uri: str, env: Mapping[str, str], pod: str) -> StoreProblem | None:
    """One attempt: list the bucket, write and delete a probe object under the prefix."""
    import fsspec

    endpoint = env.get(ENDPOINT_ENV) or "the default AWS S3 endpoint"
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    fs, _ = fsspec.core.url_to_fs(uri, **_client_options(uri, env))
    where = f"s3://{bucket} at {endpoint}"
    try:
        fs.ls(bucket, detail=False)
    except FileNotFoundError:
        return StoreProblem(BUCKET_MISSING, f"the bucket of spec.checkpoint.uri does not exist: {where}; create it "
                            "(or correct the URI), then create the job again")
    except PermissionError as err:
        return StoreProblem(ACCESS_DENIED, f"{where} refused the keys of spec.checkpoint.secretRef "
                            f"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): {_first_line(err)}")
    probe = "/".join(p for p in (bucket, prefix.strip("/"), f".ludus-probe-{pod}") if p)
    try:
        with fs.open(probe, "wb") as f:
            f.write(b"ludus start-up check\n")
        fs.rm(probe)
    except PermissionError as err:
        return StoreProblem(ACCESS_DENIED, f"{where}: the keys of spec.checkpoint.secretRef may list the bucket "
                            f"but not write under {uri}: {_first_line(err)}")
    return None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def check(uri: str, env: Mapping[str, str], pod: str = "pod",
          clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep,
          retry_for: float = UNREACHABLE_RETRY_SECONDS) -> StoreProblem | None:
    """None when this pod can write checkpoints under `uri`; else why not."""
    if not uri.startswith("s3://"):
        return StoreProblem(INVALID, f"spec.checkpoint.uri must be s3://bucket/prefix, not {uri[:200]!r}")
    deadline = clock() + retry_for
    while True:
        try:
            return _probe(uri, env, pod)
        except Exception as err:  # noqa: BLE001 - whatever the client raised is classified or reported
            if not _unreachable(err):
                return StoreProblem(INVALID, f"cannot use {uri}: {type(err).__name__}: {_first_line(err)}")
            if clock() >= deadline:
                endpoint = env.get(ENDPOINT_ENV) or "the default AWS S3 endpoint"
                return StoreProblem(UNREACHABLE, f"no answer from the object store at {endpoint} (spec.checkpoint."
                                    f"endpoint) for {retry_for:.0f} s: {_first_line(err)}")
        pause(1.0)


def main() -> int:
    uri = os.environ.get(ENV_CHECKPOINT_URI, "")
    problem = check(uri, os.environ, pod=socket.gethostname()[:63])
    if problem is None:
        print(f"ludus: checkpoints can be written to {uri}", flush=True)
        return 0
    print(f"ludus: {problem.reason}: {problem.message}", file=sys.stderr, flush=True)
    publish_error(problem.reason, problem.message)
    return EXIT_STORE_PROBLEM


if __name__ == "__main__":
    raise SystemExit(main())
