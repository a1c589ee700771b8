"""The DHCP server is a transport: it takes a ready-built core and a lease store, and never
loads racker's configuration or its SQLite store itself (the composition root does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
FORBIDDEN = ("racker.store", "racker.rack.config", "racker.rack")


def loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_the_server_loads_neither_the_config_nor_the_store() -> None:
    loaded = loaded_by("racker.dhcp.server")
    assert "racker.dhcp.core" in loaded  # (the check sees what the import brought in)
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


def test_the_check_can_fail() -> None:
    # The boot stack builds the servers from the config and the store: it loads both.
    assert not loaded_by("racker.app.stack").isdisjoint(FORBIDDEN)
