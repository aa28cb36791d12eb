"""Request paths built from names: one name is one path segment, or no request is made."""

from __future__ import annotations

import pytest

from ludus.runtime.kube import UnsafeName, collection_path, config_map_path, is_object_name, job_path, pod_path, segment


@pytest.mark.parametrize("name", ["..", ".", "../other", "a/b", "a%2Fb", "%2e%2e", "caf\u00e9", "", "A", "a" * 254,
                                  "a..b", "-a", "a-", "a b", "a?b", "a#b"])
def test_a_name_that_is_not_an_object_name_never_becomes_a_path(name: str) -> None:
    with pytest.raises(UnsafeName):
        segment(name)
    assert not is_object_name(name)
    with pytest.raises(UnsafeName):
        config_map_path("team-a", name)
    with pytest.raises(UnsafeName):
        pod_path(name)


def test_object_names_and_subdomains_pass_unchanged() -> None:
    assert config_map_path("team-a", "data.v1-2") == "/api/v1/namespaces/team-a/configmaps/data.v1-2"
    assert job_path("team-a", "digits", "status") == (
        "/apis/ludus.dev/v1alpha1/namespaces/team-a/trainingjobs/digits/status")
    body = {"kind": "Pod", "metadata": {"namespace": "../kube-system"}}
    with pytest.raises(UnsafeName):
        collection_path(body)
    assert not is_object_name(None)
