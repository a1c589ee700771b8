"""`racker factory check` on a machine whose PXE NIC really exists (inside a namespace)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from racker.rack.oem import Secret, write_credentials
from tests.support.netns import link

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"
RACKER = str(Path(sys.executable).with_name("racker"))

pytestmark = pytest.mark.root


@pytest.fixture
def oem(tmp_path: Path) -> Path:
    directory = tmp_path / "oem"
    shutil.copytree(EXAMPLE, directory)
    write_credentials(directory, "admin", Secret("pw"))
    return directory


def test_pxe_interface_found_by_mac_and_plan_reported(oem: Path) -> None:
    # The server end of the link carries the example rack's PXE MAC, like the management node.
    with link(server_ip="10.99.0.1", server_mac="52:54:00:99:02:01") as net:
        result = net.server.run(RACKER, "factory", "check", "--oem-dir", str(oem), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ PXE interface pxe0 (52:54:00:99:02:01, 10.99.0.1/24)" in result.stdout
    assert "✓ address plan: 6 nodes in 10.99.0.64-10.99.0.127, BMCs in 10.99.0.128-10.99.0.191" in (
        result.stdout
    )


def test_management_row_found_by_local_mac_and_interface_override(oem: Path) -> None:
    (oem / "pxe_interface").unlink()
    # This machine's MAC is the management row's *primary* MAC; the PXE NIC is named by flag.
    with link(server_ip="10.99.0.1", server_mac="52:54:00:99:00:01") as net:
        ok = net.server.run(RACKER, "factory", "check", "--oem-dir", str(oem), check=False)
        named = net.server.run(
            RACKER, "factory", "check", "--oem-dir", str(oem), "--interface", "pxe0", check=False
        )
        wrong = net.server.run(
            RACKER, "factory", "check", "--oem-dir", str(oem), "--interface", "eth9", check=False
        )
    assert "✓ management node: line 3" in ok.stdout
    # The 5-column row names the secondary MAC as the PXE NIC, which this machine lacks.
    assert ok.returncode == 1
    assert "no local interface has the PXE MAC 52:54:00:99:02:01" in ok.stdout
    assert named.returncode == 0, named.stdout
    assert "✓ PXE interface pxe0" in named.stdout
    assert wrong.returncode == 1
    assert "no network interface named 'eth9' on this machine" in wrong.stdout
    assert "interfaces here: lo, pxe0" in wrong.stdout
