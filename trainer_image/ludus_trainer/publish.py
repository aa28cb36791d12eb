"""Publish a promoted model: point `<root>/champion` at `<root>/runs/<run>/model`, atomically.

Run by the operator's publish pod on the claim. The weights are checked against the SHA-256 their
metadata carries first: a model that is missing, half-written or changed since it was evaluated is
refused and the link stays where it was. The switch is a new relative link renamed over the old
one (rename is atomic on POSIX file systems), then the directory is fsynced; the model files are
never copied, so the champion is byte for byte what the run exported.

In object storage (`--uri`) there is no link and no rename: the model is downloaded and verified the same
way, then `<uri>/champion.json` (the run, the model's URI, its SHA-256) is written in one PUT, which
readers see whole or not at all; killed before it, the old pointer stands. `remote_model.fetch_model`
resolves a pointer to its model.

With `--registered-model` and `--tracking-run` (spec.template.tracking), the run's version of the registered
model in MLflow then gets the `champion` alias, after the switch: the same decision, in the same order. A
tracker that cannot be reached does not undo a publication; the report says so (`registryError`).

Exit 0 with `{"sha256": ...}` in the termination message, or 1 with `{"error": ..., "reason": ...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ludus_trainer.digest import METADATA, WEIGHTS, sha256_of
from ludus_trainer.env import ENV_TERMINATION_LOG, ENV_TRACKING_URI


class PublishError(RuntimeError):
    """The model cannot be published; the message says what is missing."""

    def __init__(self, message: str, reason: str = "PublishFailed") -> None:
        super().__init__(message)
        self.reason = reason


# The reason the operator names on the ContinuousTraining: the run exported nothing (its script never
# called ludus_trainer.api.export_model), which no retry mends.
NO_EXPORT = "NoExportedModel"


def verify(model: Path) -> dict[str, Any]:
    """The model's metadata, once its weights match the checksum recorded in it."""
    weights, meta_file = model / WEIGHTS, model / METADATA
    if not model.is_dir():
        raise PublishError(f"{model} does not exist: the run exported no model (did it succeed on this claim?)",
                           NO_EXPORT)
    if not meta_file.is_file() or not weights.is_file():
        raise PublishError(f"{model} holds no complete model ({WEIGHTS} and {METADATA} are both needed)")
    try:
        metadata = json.loads(meta_file.read_text())
    except ValueError as err:
        raise PublishError(f"{meta_file} is not JSON: {err}") from err
    expected = str(metadata.get("sha256") or "")
    actual = sha256_of(weights)
    if expected != actual:
        raise PublishError(f"{weights} does not match its metadata (sha256 {actual[:12]}, expected "
                           f"{expected[:12] or 'none'}): refusing to publish a changed or partial model")
    return dict(metadata)


def switch_link(root: Path, link: str, target: str) -> None:
    """Make `root/link` a relative link to `target` in one rename; fsync the directory."""
    temporary = root / f".{link}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, root / link)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(root: Path, run: str, link: str = "champion") -> dict[str, Any]:
    """Verify `runs/<run>/model` and make `link` point at it; what the termination message reports."""
    target = f"runs/{run}/model"
    metadata = verify(root / target)
    current = os.readlink(root / link) if (root / link).is_symlink() else None
    if current != target:
        switch_link(root, link, target)
    return {"sha256": metadata["sha256"], "step": metadata.get("step"), "path": f"{link} -> {target}",
            "message": "already published" if current == target else "published"}


def publish_remote(base: str, run: str, pointer: str = "champion.json") -> dict[str, Any]:
    """Verify `<base>/runs/<run>/model` and write `<base>/<pointer>` naming it, in one PUT."""
    import tempfile

    from ludus_trainer.digest import InitError
    from ludus_trainer.remote_model import fetch_model, read_pointer, write_pointer

    base = base.rstrip("/")
    model = f"{base}/runs/{run}/model"
    with tempfile.TemporaryDirectory(prefix="ludus-publish-") as scratch:
        try:
            local = fetch_model(model, Path(scratch) / "model")
        except InitError as err:
            raise PublishError(str(err), NO_EXPORT) from err
        metadata = verify(local)
    current = read_pointer(f"{base}/{pointer}")
    record = {"run": run, "model": model, "sha256": metadata["sha256"], "step": metadata.get("step")}
    already = current is not None and all(current.get(k) == v for k, v in record.items())
    if not already:
        write_pointer(f"{base}/{pointer}", record)
    return {"sha256": metadata["sha256"], "step": metadata.get("step"), "path": f"{pointer} -> {model}",
            "message": "already published" if already else "published"}


def move_alias(registered_model: str, run_id: str, reason: str) -> dict[str, Any]:
    """The registered model's `champion` alias on this run's version (what the report adds)."""
    from ludus_trainer.tracking import client_for, promote_version

    uri = os.environ.get(ENV_TRACKING_URI, "")
    if not uri:
        return {"registryError": "no MLFLOW_TRACKING_URI"}
    try:
        version = promote_version(client_for(uri), registered_model, run_id, reason)
    except Exception as err:  # noqa: BLE001 - the tracker's failure never undoes the publication
        return {"registryError": str(err)[:300]}
    return {"registryVersion": version}


def write_report(payload: dict[str, Any]) -> None:
    """The pod's outcome: a log line and the termination message the operator reads."""
    text = json.dumps(payload, separators=(",", ":"))
    print(text, flush=True)
    path = Path(os.environ.get(ENV_TERMINATION_LOG, "/dev/termination-log"))
    if path.parent.exists():
        try:
            path.write_text(text[:4000])
        except OSError:
            pass  # the log line above carries it too (FallbackToLogsOnError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ludus_trainer.publish", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--root", type=Path, help="The continuous training's directory on the claim.")
    where.add_argument("--uri", help="The continuous training's prefix in object storage (s3://...).")
    parser.add_argument("--run", required=True, help="The run whose model becomes the champion.")
    parser.add_argument("--link", default="champion", help="The stable link's name in --root.")
    parser.add_argument("--pointer", default="champion.json", help="The pointer object's name under --uri.")
    parser.add_argument("--registered-model", help="MLflow's registered model whose champion alias moves too.")
    parser.add_argument("--tracking-run", help="The run's MLflow run ID (its version of the registered model).")
    parser.add_argument("--reason", default="Promoted", help="Why it is promoted (tagged on the version).")
    args = parser.parse_args(argv)
    try:
        report = (publish_remote(args.uri, args.run, args.pointer) if args.uri else
                  publish(args.root, args.run, args.link))
        if args.registered_model and args.tracking_run:
            report.update(move_alias(args.registered_model, args.tracking_run, args.reason))
        write_report(report)
    except PublishError as err:
        write_report({"error": str(err), "reason": err.reason})
        return 1
    except OSError as err:
        write_report({"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
