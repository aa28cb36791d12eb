"""The command line: peering priorities and the CRD output."""

from __future__ import annotations

from pathlib import Path

from ludus.api.crd import render_crd_yaml
from ludus.cli import main, peering_priority


def test_auto_priority_is_stable_per_host_and_positive() -> None:
    assert peering_priority("auto") == peering_priority("auto") > 0
    assert peering_priority("7") == 7


def test_crd_command_writes_the_generated_crd(tmp_path: Path) -> None:
    out = tmp_path / "crd.yaml"
    assert main(["crd", "--output", str(out)]) == 0
    assert out.read_text() == render_crd_yaml()


def test_every_verb_of_the_user_cli_shows_an_example_in_its_help() -> None:
    import typer

    from ludus.sdk.cli import app

    def leaves(cmd: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [(path, cmd)]
        return [leaf for name, sub in subs.items() for leaf in leaves(sub, (*path, name))]

    verbs = leaves(typer.main.get_command(app))
    assert len(verbs) >= 20
    missing = [" ".join(path) for path, cmd in verbs if "Example: ludus" not in (getattr(cmd, "help", "") or "")]
    assert missing == []
