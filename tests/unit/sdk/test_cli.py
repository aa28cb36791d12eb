"""The `ludus` command line without a cluster: usage errors, Ctrl-C and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from ludus.sdk import cli
from ludus.sdk.errors import EXIT_INTERRUPTED, EXIT_USAGE

BIN = Path(sys.executable).parent


def test_a_usage_error_is_exit_2_with_the_usage_and_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--bogus"]) == EXIT_USAGE
    assert cli.main(["get"]) == EXIT_USAGE
    printed = capsys.readouterr()
    assert "No such option: --bogus" in printed.err and "Missing argument" in printed.err
    assert "Traceback" not in printed.err + printed.out


def test_ctrl_c_outside_a_follow_is_exit_130_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.trainingjob, "_client", interrupted)
    assert cli.main(["list"]) == EXIT_INTERRUPTED
    assert "Traceback" not in capfd.readouterr().err


def test_kubectl_plugin_completion_speaks_cobras_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    """kubectl runs `kubectl_complete-ludus WORDS... INCOMPLETE` and reads candidates, then `:directive`."""
    cli.kubectl_complete(["ge"])
    assert capsys.readouterr().out.splitlines() == ["get", ":4"]
    cli.kubectl_complete(["logs", "digits", "--fo"])
    assert capsys.readouterr().out.splitlines() == ["--follow", ":4"]
    cli.kubectl_complete([""])
    verbs = capsys.readouterr().out.splitlines()
    assert {"run", "apply", "list", "logs", "wait", "delete"} <= set(verbs) and verbs[-1] == ":4"


def test_bash_completion_through_the_installed_console_script() -> None:
    env = {**os.environ, "_LUDUS_COMPLETE": "complete_bash", "COMP_WORDS": "ludus wa", "COMP_CWORD": "1"}
    done = subprocess.run([str(BIN / "ludus")], env=env, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["wait"], done
    shown = subprocess.run([str(BIN / "ludus"), "--show-completion", "bash"], text=True, capture_output=True,
                           timeout=60)
    assert "_LUDUS_COMPLETE=complete_bash" in shown.stdout, shown


def test_job_names_complete_to_nothing_quickly_when_the_cluster_is_unreachable(tmp_path: Path) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "dead",
              "clusters": [{"name": "dead", "cluster": {"server": "https://192.0.2.1:6443"}}],
              "users": [{"name": "u", "user": {"token": "x"}}],
              "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}]}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "_LUDUS_COMPLETE": "complete_bash",
           "COMP_WORDS": "ludus get di", "COMP_CWORD": "2"}
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ludus")], env=env, text=True, capture_output=True, timeout=60)
    # 192.0.2.1 (TEST-NET-1) never answers: the request timeout, not the OS's, ends the wait.
    assert done.returncode == 0 and done.stdout.strip() == "" and "Traceback" not in done.stderr, done
    assert time.monotonic() - started < 30


def test_a_long_log_line_is_never_wrapped_when_piped(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Rich wraps at 80 columns off a terminal: a JSON progress line must reach a pipe whole."""
    line = "[worker-0] LUDUS_PROGRESS " + '{"step": 1, "padding": "' + "x" * 300 + '"}'

    class Client:
        def logs(self, *_: object, **__: object) -> list[str]:
            return [line]

    monkeypatch.setattr(cli.trainingjob, "_client", lambda *_: Client())
    monkeypatch.setattr(cli.common, "out", Console(width=80))
    assert cli.main(["logs", "job"]) == 0
    assert line in capsys.readouterr().out.splitlines()
