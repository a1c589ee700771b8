"""Ignition's own validator (Debian's ignition-validate) on everything racker renders.

Every built-in profile's Ignition, for installing and installed nodes of each role, with one
NIC and two, and every config embedded in them (``/opt/racker/installed.ign``); the golden
files too. ``racker render`` runs the same validator and says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli
from racker.ignition_validate import ignition_problems
from racker.profiles import Catalog, load_catalog
from racker.profiles.explain import embedded_configs
from tests.unit.profiles.helpers import NODE, SETTINGS, SINGLE_NIC, context, facts

GOLDEN = Path(__file__).parents[3] / "fixtures" / "profiles" / "golden"
EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"

pytestmark = pytest.mark.skipif(
    shutil.which("ignition-validate") is None,
    reason="ignition-validate is not installed (scripts/setup-host installs Debian's ignition)",
)


@pytest.fixture(scope="module")
def builtin() -> Catalog:
    return load_catalog(None, SETTINGS)


def renderings(catalog: Catalog) -> list[tuple[str, dict[str, object]]]:
    out = []
    for node in (NODE, SINGLE_NIC):
        for role in ("controller", "worker", None):
            for installed in (False, True):
                ctx = context(node, role=role, installed=installed)
                match = catalog.select(facts(node.primary_mac), ctx)
                if match.profile.ignition is None:
                    continue
                config = catalog.render_ignition(facts(node.primary_mac), ctx)
                what = f"{node.hostname} role={role} installed={installed} ({match.profile.id})"
                out.append((what, config))
                out += [(f"{what} {path}", inner) for path, inner in embedded_configs(config)]
    return out


def test_every_builtin_rendering_passes_ignition_validate(builtin: Catalog) -> None:
    configs = renderings(builtin)
    profiles = {what.split("(")[1].split(")")[0] for what, _ in configs}
    assert {"flatcar-install", "installed"} <= profiles, profiles
    assert any("installed.ign" in what for what, _ in configs)
    for what, config in configs:
        assert ignition_problems(config) == [], what  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["flatcar-install.ign.json", "installed.ign.json"])
def test_golden_configs_pass_ignition_validate(name: str) -> None:
    config = json.loads((GOLDEN / name).read_text())
    for what, each in [(name, config), *embedded_configs(config)]:
        assert ignition_problems(each) == [], what


def test_the_validator_rejects_what_ignition_rejects() -> None:
    bad = {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "relative"}]}}
    problems = ignition_problems(bad)
    assert problems and "path not absolute" in problems[0]


def test_racker_render_runs_the_validator(tmp_path: Path) -> None:
    args = ["--oem-dir", str(EXAMPLE), "--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(cli, [*args, "render", "52:54:00:99:00:20"])
    assert result.exit_code == 0, result.output
    assert "# ignition-validate, the config: valid" in result.output
    assert "# ignition-validate, /opt/racker/installed.ign: valid" in result.output
