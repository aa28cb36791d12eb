"""Which image records a node drops after an import: the pure half of `RealNode._keep_only_what_runs`."""

from __future__ import annotations

from devcluster.node import replaced_aliases

OLD, NEW, PAUSE = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def test_the_id_alias_of_an_image_its_tag_no_longer_names_is_dropped() -> None:
    images = [("docker.io/library/ludus-trainer:latest", NEW), ("sha256:" + "a" * 64, OLD),
              ("sha256:" + "b" * 64, NEW)]
    assert replaced_aliases(images) == ["sha256:" + "a" * 64]


def test_the_id_alias_of_an_image_still_tagged_is_kept() -> None:
    images = [("ludus.local/pause:3.10", PAUSE), ("sha256:" + "c" * 64, PAUSE)]
    assert replaced_aliases(images) == []


def test_one_tag_is_enough_to_keep_an_image_another_tag_left() -> None:
    images = [("docker.io/library/a:1", OLD), ("docker.io/library/b:1", NEW), ("sha256:" + "d" * 64, OLD)]
    assert replaced_aliases(images) == []
