"""Golden files: the built-in Flatcar profiles rendered for fixture nodes, as exact text.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 .venv/bin/pytest
tests/unit/profiles/test_golden.py`` and review the diff of fixtures/profiles/golden/. Besides
the exact Ignition JSON, a ``.files.txt`` view decodes every data URL (recursively into the
embedded final config) so a reviewer reads the scripts and units, not base64.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from racker.profiles import Catalog, check_ignition, explain, load_catalog
from racker.profiles.explain import decode_data_url
from racker.profiles.explain import files_view as render_files_view
from tests.unit.profiles.helpers import NODE, SETTINGS, SINGLE_NIC, context, facts

GOLDEN = Path(__file__).parents[3] / "fixtures" / "profiles" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def files_view(config: dict[str, Any], prefix: str = "") -> str:
    """racker render's decoded view, plus: every embedded Ignition config must be valid too."""
    for f in config.get("storage", {}).get("files", []):
        if f["path"].endswith(".ign"):
            inner = json.loads(decode_data_url(f["contents"]["source"]))
            assert check_ignition(inner) == [], "embedded Ignition must be valid too"
    return render_files_view(config, prefix)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (UPDATE_GOLDEN=1 to accept)"


@pytest.fixture(scope="module")
def builtin() -> Catalog:
    return load_catalog(None, SETTINGS)


def test_flatcar_install(builtin: Catalog) -> None:
    f, ctx = facts(platform="efi"), context(NODE)
    rendered = builtin.render_ipxe(f, ctx)
    assert rendered.match.group.id == "default"
    check_golden("flatcar-install.ipxe", rendered.text)
    ignition = builtin.render_ignition(f, ctx)
    assert check_ignition(ignition) == []
    check_golden("flatcar-install.ign.json", json.dumps(ignition, indent=2, sort_keys=True) + "\n")
    check_golden("flatcar-install.files.txt", files_view(ignition))


def test_flatcar_install_single_nic_explicit_disk(builtin: Catalog) -> None:
    ignition = builtin.render_ignition(facts(SINGLE_NIC.primary_mac), context(SINGLE_NIC))
    view = files_view(ignition)
    assert "WANTED_DISK=/dev/nvme0n1" in view
    assert "00-racker-public.network" not in view
    check_golden("flatcar-install-single-nic.files.txt", view)


def test_installed(builtin: Catalog) -> None:
    f, ctx = facts(platform="pcbios"), context(NODE, installed=True)
    rendered = builtin.render_ipxe(f, ctx)
    assert rendered.match.group.id == "installed"
    check_golden("installed.ipxe", rendered.text)
    ignition = builtin.render_ignition(f, ctx)
    check_golden("installed.ign.json", json.dumps(ignition, indent=2, sort_keys=True) + "\n")


def test_unknown_machine_boots_from_disk(builtin: Catalog) -> None:
    rendered = builtin.render_ipxe(facts("52:54:00:99:99:99"), context(None))
    assert rendered.match.group.id == "unknown"
    check_golden("unknown.ipxe", rendered.text)


def test_render_explain(builtin: Catalog) -> None:
    text = explain(builtin, facts(), context(NODE))
    assert text.startswith("# machine: 52:54:00:12:34:56 (compute-123456, type compute")
    assert "# group: default" in text
    assert "## iPXE script\n#!ipxe\n" in text
    assert '"version": "3.3.0"' in text
    # Files decoded (the golden view), no base64 data URL left to read
    view = (GOLDEN / "flatcar-install.files.txt").read_text()
    assert text.endswith("## Ignition files and units, decoded\n" + view)
    assert "data:" not in text.split("## Ignition files")[0].split("## Ignition")[1]
    raw = explain(builtin, facts(), context(NODE), raw_json=True)
    assert "data:" in raw and "## Ignition files and units, decoded" not in raw


def test_golden_files_are_all_used() -> None:
    # A renamed test must not leave a stale golden file that nothing checks any more.
    expected = {
        "flatcar-install.ipxe", "flatcar-install.ign.json", "flatcar-install.files.txt",
        "flatcar-install-single-nic.files.txt", "installed.ipxe", "installed.ign.json",
        "unknown.ipxe",
    }  # fmt: skip
    assert {p.name for p in GOLDEN.iterdir()} == expected
