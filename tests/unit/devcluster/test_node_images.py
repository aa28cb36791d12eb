"""The pure halves of a real node's image import: which records it drops afterwards, and whether a name
already holds an unpacked image."""

from __future__ import annotations

from devcluster.node import replaced_aliases, unpacked_target

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


CHECK_HEADER = "REF TYPE DIGEST STATUS SIZE UNPACKED\n"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
TRAINER = f"docker.io/library/ludus-trainer:latest {MANIFEST}"


def test_an_unpacked_image_is_held_by_its_manifest() -> None:
    check = CHECK_HEADER + f"{TRAINER} {NEW} incomplete (1/6) 3.7 KiB/5.0 GiB true\n"
    assert unpacked_target(check) == NEW


def test_an_image_a_failed_import_left_half_unpacked_is_not_held() -> None:
    check = CHECK_HEADER + f"{TRAINER} {OLD} complete (7/7) 5.0 GiB/5.0 GiB false\n"
    assert unpacked_target(check) is None


def test_a_name_containerd_does_not_have_holds_nothing() -> None:
    assert unpacked_target(CHECK_HEADER) is None
    assert unpacked_target("") is None
