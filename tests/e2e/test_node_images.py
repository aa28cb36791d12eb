"""What an image import leaves on a real node's disk: one unpacked copy of the current image, and
nothing of the image it replaced (no layer blobs, no ID record, no lease). The trainer image is 5 GB; a
node that kept each rebuild, or each layer twice, filled the disk of the machine CI runs on."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.node import RealNode

PROBE = "ludus.local/disk-probe:e2e"
REF = PROBE


def _build(tmp: Path, payload: bytes) -> tuple[str, str]:
    """A one-layer image under PROBE holding `payload`; returns its ID and its layer's digest."""
    image_id, (layer,) = _build_layers(tmp, {"payload": payload})
    return image_id, layer


def _build_layers(tmp: Path, files: dict[str, bytes]) -> tuple[str, list[str]]:
    """An image under PROBE with one layer per file, in order; returns its ID and its layers' digests."""
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    (tmp / "Dockerfile").write_text("FROM scratch\n" + "".join(f"COPY {name} /{name}\n" for name in files))
    subprocess.run(["docker", "build", "--quiet", "-t", PROBE, str(tmp)], check=True, capture_output=True)
    inspect = json.loads(subprocess.run(["docker", "image", "inspect", PROBE], check=True, capture_output=True,
                                        text=True).stdout)[0]
    return inspect["Id"], inspect["RootFS"]["Layers"]


def _chain_id(layers: list[str]) -> str:
    """The key containerd gives the snapshot of a stack of layers (the OCI image spec's ChainID)."""
    chain = layers[0]
    for layer in layers[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {layer}".encode()).hexdigest()
    return chain


def _named_digests(node: RealNode) -> set[str]:
    return {digest for _, digest in node._images()}


def _committed(node: RealNode) -> set[str]:
    return {line.split()[0] for line in _ctr(node, "snapshots", "ls").splitlines()[1:]
            if line.split()[-1:] == ["Committed"]}


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


@pytest.mark.usefixtures("probe_image")
def test_the_image_a_name_held_stays_referenced_until_its_replacement_is_unpacked(real_node: RealNode,
                                                                                  tmp_path: Path) -> None:
    """An import moves the name to the new image before it unpacks it, and the unpack builds on the
    layers the two images share. Were the replaced image referenced by nothing in that window, a
    garbage collection could delete a shared layer between the unpack finding it and stacking the
    next one on it: `parent snapshot ... does not exist` (a CI run failed so). The CRI gives only the
    first image a name ever held an ID record of its own, so the replaced image here is the second."""
    _build_layers(tmp_path, {"first": os.urandom(1000)})
    real_node.import_image(PROBE)
    base = os.urandom(1 << 20)
    _, old_layers = _build_layers(tmp_path, {"base": base})
    real_node.import_image(PROBE)
    old_manifest = dict(real_node._images())[REF]

    # A large new layer on the shared one: its unpack takes long enough for the watch to see the window.
    _, new_layers = _build_layers(tmp_path, {"base": base, "big": os.urandom(256 << 20)})
    assert new_layers[0] == old_layers[0], "the two images must share their first layer"
    new_top = _chain_id(new_layers)
    unreferenced: list[float] = []
    polls = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal polls
        started = time.monotonic()
        while not done.is_set():
            named = _named_digests(real_node)  # read before the snapshots: no false alarm at the end
            if old_manifest not in named and new_top not in _committed(real_node):
                unreferenced.append(time.monotonic() - started)
            polls += 1
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        real_node.import_image(PROBE)
    finally:
        done.set()
        watcher.join()
    assert polls > 10, "the watch did not run during the import"
    assert new_top in _committed(real_node), "the new image was not unpacked"
    assert not unreferenced, (f"the replaced image was referenced by nothing for {len(unreferenced)} of {polls} "
                              f"looks while its replacement was unpacked, from {unreferenced[0]:.2f}s")
    assert old_manifest not in _named_digests(real_node), "the replaced image was kept after the import"


@pytest.mark.usefixtures("probe_image")
def test_a_name_an_unfinished_import_moved_is_imported_again(real_node: RealNode, tmp_path: Path) -> None:
    """ctr moves a name before it unpacks: an import that then fails leaves the name on an image it did not
    unpack, and the next import of the image the name held before must not take it for done."""
    held_id, _ = _build_layers(tmp_path, {"held": os.urandom(1000)})
    real_node.import_image(PROBE)
    _build_layers(tmp_path, {"unfinished": os.urandom(1000)})
    save = subprocess.run(["docker", "save", PROBE], check=True, capture_output=True).stdout
    subprocess.run(real_node._ctr_cmd("images", "import", "--no-unpack", "-"), input=save, check=True,
                   capture_output=True)  # what a failed unpack leaves: the name moved, nothing unpacked
    subprocess.run(["docker", "tag", held_id, PROBE], check=True)

    real_node.import_image(PROBE)
    check = _ctr(real_node, "images", "check", f"name=={REF}").splitlines()[1].split()
    config = json.loads(_ctr(real_node, "content", "get", check[2]))["config"]["digest"]
    assert (config, check[-1]) == (held_id, "true"), "the name was left on the image the import did not finish"
