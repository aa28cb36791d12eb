"""What an image import leaves on a real node's disk: one unpacked copy of the current image, and
nothing of the image it replaced (no layer blobs, no ID record, no lease). The trainer image is 5 GB; a
node that kept each rebuild, or each layer twice, filled the disk of the machine CI runs on."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.node import RealNode

PROBE = "ludus.local/disk-probe:e2e"
REF = PROBE


def _build(tmp: Path, payload: bytes) -> tuple[str, str]:
    """A one-layer image under PROBE holding `payload`; returns its ID and its layer's digest."""
    (tmp / "payload").write_bytes(payload)
    (tmp / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    subprocess.run(["docker", "build", "--quiet", "-t", PROBE, str(tmp)], check=True, capture_output=True)
    inspect = json.loads(subprocess.run(["docker", "image", "inspect", PROBE], check=True, capture_output=True,
                                        text=True).stdout)[0]
    (layer,) = inspect["RootFS"]["Layers"]
    return inspect["Id"], layer


def _ctr(node: RealNode, *args: str) -> str:
    return subprocess.run(node._ctr_cmd(*args), check=True, capture_output=True, text=True).stdout


def _first_column(node: RealNode, *args: str) -> set[str]:
    """The keys a ctr listing shows (blob digests, snapshot keys), without its labels."""
    return {line.split()[0] for line in _ctr(node, *args).splitlines()[1:] if line.strip()}


@pytest.fixture
def probe_image(real_node: RealNode) -> Iterator[None]:
    yield
    for name in _ctr(real_node, "images", "ls", "-q").split():
        if name == REF:
            _ctr(real_node, "images", "rm", "--sync", name)
    subprocess.run(["docker", "image", "rm", "-f", PROBE], capture_output=True)


@pytest.mark.usefixtures("probe_image")
def test_a_replaced_image_leaves_the_node_and_only_its_unpacked_layers_stay(real_node: RealNode,
                                                                             tmp_path: Path) -> None:
    leases = set(_ctr(real_node, "leases", "ls", "-q").split())
    old_id, old_layer = _build(tmp_path, b"first" * 200_000)
    real_node.import_image(PROBE)
    assert old_layer in _first_column(real_node, "snapshots", "ls"), "the imported image was not unpacked"
    assert old_layer not in _first_column(real_node, "content", "ls"), "the unpacked layer's blob is still stored"

    new_id, new_layer = _build(tmp_path, b"second" * 200_000)
    assert new_id != old_id
    real_node.import_image(PROBE)

    images = dict(line.split()[:3:2] for line in _ctr(real_node, "images", "ls").splitlines()[1:])
    content = _first_column(real_node, "content", "ls")
    snapshots = _first_column(real_node, "snapshots", "ls")
    assert old_id not in images, f"the replaced image is still recorded by its ID: {sorted(images)}"
    assert old_id not in content, "the replaced image's config is still stored"
    assert old_layer not in snapshots, "the replaced image's unpacked layer is still on disk"
    assert new_layer in snapshots and new_layer not in content
    assert images[REF] in content, "the current image lost its manifest"
    assert set(_ctr(real_node, "leases", "ls", "-q").split()) == leases, "an import left a lease behind"
