"""Credentials: exec plugins' answers, merged kubeconfigs, and TLS keys that never stay on disk."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import kopf
import pytest
import yaml

from ludus.runtime.credentials import current_user, parse_exec_credential, run_exec_plugin
from ludus.runtime.kube import ssl_context


def test_an_exec_token_comes_with_its_expiry() -> None:
    out = json.dumps({"status": {"token": "abc", "expirationTimestamp": "2026-12-04T10:00:00Z"}})
    fields = parse_exec_credential(out)
    assert fields["token"] == "abc"
    assert fields["expiration"] == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_an_exec_plugin_that_grants_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="neither a token nor a client certificate"):
        parse_exec_credential(json.dumps({"status": {}}))


def test_the_plugin_runs_with_its_env_and_kubectls_exec_info(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(
        "#!/bin/sh\n"
        'seen=$(echo "$KUBERNETES_EXEC_INFO" | grep -c ExecCredential)\n'
        'printf \'{"status":{"token":"%s-%s"}}\' "$GREETING" "$seen"\n'
    )
    plugin.chmod(0o755)
    spec = {"command": str(plugin), "env": [{"name": "GREETING", "value": "hi"}]}
    assert run_exec_plugin(spec, "https://example.invalid")["token"] == "hi-1"


def test_the_current_user_comes_from_the_first_file_that_defines_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(yaml.safe_dump({"current-context": "c", "contexts": [{"name": "c", "context": {"user": "u"}}]}))
    second.write_text(yaml.safe_dump({"users": [{"name": "u", "user": {"exec": {"command": "get-token"}}}]}))
    assert current_user([first, second]) == {"exec": {"command": "get-token"}}


def _self_signed(tmp_path: Path) -> tuple[bytes, bytes]:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ludus-test", "-days", "1",
         "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
        check=True, capture_output=True,
    )
    return (tmp_path / "c.pem").read_bytes(), (tmp_path / "k.pem").read_bytes()


def test_an_inline_client_key_is_loaded_and_no_copy_is_left_on_disk(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    before = set(os.listdir(tempfile.gettempdir()))
    info = kopf.ConnectionInfo(
        server="https://127.0.0.1:1",
        ca_data=base64.b64encode(cert).decode(),
        certificate_data=base64.b64encode(cert).decode(),
        private_key_data=base64.b64encode(key).decode(),
    )
    context = ssl_context(info)
    assert not isinstance(context, bool) and context.cert_store_stats()["x509_ca"] == 1
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("ludus")}
    assert left == set()
