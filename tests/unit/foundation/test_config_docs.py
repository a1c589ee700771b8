"""docs/config.md documents every key of the schema (the dataclasses in racker.rack.config)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from racker.model import AddressRange
from racker.rack.config import Config

DOC = Path(__file__).parents[3] / "docs" / "config.md"


def key_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        path = prefix + field.name
        if dataclasses.is_dataclass(hint) and hint is not AddressRange:
            paths.extend(key_paths(typing.cast(type, hint), path + "."))
        else:
            paths.append(path)
    return paths


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [p for p in key_paths(Config) if f"`{p}`" not in text]
    assert not missing, f"document these racker.yaml keys in {DOC}: {missing}"


def test_walk_finds_nested_keys() -> None:
    paths = key_paths(Config)
    assert "dhcp.unknown_clients" in paths
    assert "network.nodes" in paths  # an AddressRange is a value, not a section
