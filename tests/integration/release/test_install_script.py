"""packaging/install-on-host.sh, the script the installer image runs, without a container:
the host root is a scratch tree and nsenter is a fake that records its arguments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from racker.release.bundle import unpack_bundle
from tests.integration.release.conftest import ARCH, Rig

SCRIPT = Path(__file__).parents[3] / "packaging" / "install-on-host.sh"

FAKE_NSENTER = """#!/bin/sh
echo "$*" >> "{log}"
exit 0
"""


def run_script(rig: Rig, bundle: Path, host: Path) -> subprocess.CompletedProcess[str]:
    nsenter = rig.fakebin / "nsenter"
    nsenter.write_text(FAKE_NSENTER.format(log=rig.tmp / "nsenter.log"))
    nsenter.chmod(0o755)
    return subprocess.run(
        ["sh", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        # The venv's bin holds a `racker` launcher standing in for the bundle's Python-less one.
        env={
            "PATH": f"{rig.fakebin}:{Path(sys.executable).parent}:/usr/bin:/bin",
            "RACKER_HOST_ROOT": str(host),
            "RACKER_BUNDLE_DIR": str(bundle),
        },
    )


@pytest.fixture
def bundle(rig: Rig) -> Path:
    """An unpacked bundle whose `racker` is the real CLI installing the fake bundle's files."""
    unpack_bundle(rig.www / f"racker-1.2.0-linux-{ARCH}.tar.gz", rig.tmp / "image")
    folder = rig.tmp / "image" / "racker"
    archive = rig.www / f"racker-1.2.0-linux-{ARCH}.tar.gz"
    shutil.move(folder / "racker", folder / "racker.real")
    (folder / "racker").write_text(
        f'#!/bin/sh\nexec racker --config {rig.tmp}/racker.yaml "$@" --bundle {archive}\n'
    )
    (folder / "racker").chmod(0o755)
    return folder


def test_installs_onto_the_host_and_enables_the_unit(rig: Rig, bundle: Path) -> None:
    (rig.root / "etc").mkdir()
    result = run_script(rig, bundle, rig.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert rig.installed_command() == "racker 1.2.0"
    assert (rig.root / "etc/systemd/system/racker.service").exists()
    calls = (rig.tmp / "nsenter.log").read_text().splitlines()
    host = "--target 1 --mount --uts --ipc --net --"
    assert calls[:3] == [
        f"{host} systemctl daemon-reload",
        f"{host} systemctl enable racker.service",
        f"{host} systemctl is-active --quiet racker.service",
    ]
    assert "systemctl start racker" in result.stdout


def test_says_why_when_the_host_root_is_not_visible(rig: Rig, bundle: Path) -> None:
    result = run_script(rig, bundle, rig.tmp / "nothing-here")
    assert result.returncode == 1
    assert "--privileged --pid host" in result.stderr
    assert not (rig.tmp / "nsenter.log").exists()
