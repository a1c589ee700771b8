"""`racker render MAC` end to end through the CLI, offline (no interface, no server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import racker
from racker.cli import cli

OEM = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "racker.yaml"
    path.write_text(
        "network: {subnet: 10.99.0.0/24, server: 10.99.0.1}\n"
        "ssh_authorized_keys: ['ssh-ed25519 AAAAtest ops']\n"
        "install: {disks: {'*': largest}}\n"
    )
    return path


def run(tmp_path: Path, config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "--oem-dir",
            str(OEM),
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(config),
            *args,
        ],
    )
    return result.exit_code, result.output


def test_render_worker(tmp_path: Path, config: Path) -> None:
    code, out = run(tmp_path, config, "render", "52-54-00-99-00-20")
    assert code == 0, out
    assert out.startswith("# machine: 52:54:00:99:00:20 (red-990020, type red)")
    assert "# group: default" in out
    assert (
        "kernel http://10.99.0.1:8080/assets/flatcar/current/flatcar_production_pxe.vmlinuz" in out
    )
    assert "racker assets fetch flatcar" in out  # the mirror is empty: say what to do
    assert "# iPXE scripts: rendered ahead (they read nothing of a request but the MAC)" in out
    shown, decoded = out.split("## Ignition\n", 1)[1].split(
        "\n## Ignition files and units, decoded\n"
    )
    ignition = json.loads(shown)
    assert ignition["passwd"]["users"][0]["sshAuthorizedKeys"] == ["ssh-ed25519 AAAAtest ops"]
    assert "===== /opt/racker/install.sh (mode 0o755) =====\n#!/bin/bash\n" in decoded
    assert "base64" not in out
    # --json: the config exactly as a node is served it, data URLs and all
    code, raw = run(tmp_path, config, "render", "52-54-00-99-00-20", "--json")
    assert code == 0, raw
    served = json.loads(raw.split("## Ignition\n", 1)[1])
    assert served["passwd"] == ignition["passwd"]
    assert served["storage"]["files"][0]["contents"]["source"].startswith("data:")


def test_render_installed_and_management(tmp_path: Path, config: Path) -> None:
    code, out = run(tmp_path, config, "render", "52:54:00:99:00:20", "--installed")
    assert code == 0, out
    assert "# group: installed" in out
    assert "sanboot --no-describe --drive 0x80" in out
    code, out = run(tmp_path, config, "render", "52:54:00:99:00:01")
    assert "# group: management" in out
    assert "has no Ignition config" in out


def test_render_unknown_and_bad_mac(tmp_path: Path, config: Path) -> None:
    code, out = run(tmp_path, config, "render", "52:54:00:00:00:77")
    assert code == 0, out
    assert "not in inventory" in out
    assert "# group: unknown" in out
    code, out = run(tmp_path, config, "render", "not-a-mac")
    assert code == 2
    assert "not a MAC address" in out


def test_render_reports_a_broken_profile_dir(tmp_path: Path, config: Path) -> None:
    profiles = tmp_path / "profiles"
    (profiles / "groups").mkdir(parents=True)
    (profiles / "groups" / "default.yaml").write_text("profile: nope\n")
    config.write_text(config.read_text() + f"http: {{profiles_dir: {profiles}}}\n")
    code, out = run(tmp_path, config, "render", "52:54:00:99:00:20")
    assert code == 3
    assert "default.yaml:1: profile 'nope' not found" in out


def test_render_says_why_scripts_are_rendered_on_each_request(tmp_path: Path, config: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(Path(racker.__file__).parent / "data" / "profiles", profiles)
    (profiles / "groups" / "arm.yaml").write_text(
        "profile: flatcar-install\nselectors: {serial: SN-ARM-1}\n"
    )
    config.write_text(config.read_text() + f"http: {{profiles_dir: {profiles}}}\n")
    code, out = run(tmp_path, config, "render", "52-54-00-99-00-20")
    assert code == 0, out
    assert (
        f"# iPXE scripts: rendered on each request: group 'arm' ({profiles}/groups/arm.yaml)"
        " selects by serial"
    ) in out
