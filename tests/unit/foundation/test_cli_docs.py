"""docs/cli.md names every top-level command of `racker --help`."""

from __future__ import annotations

from pathlib import Path

from racker.cli import cli

DOC = Path(__file__).parents[3] / "docs" / "cli.md"


def test_every_command_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in cli.commands if f"`racker {name}" not in text]
    assert not missing, f"document these commands in {DOC}: {missing}"
