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
    assert "✓ PXE interface pxe0 (52:54:00:99:02:01): its MAC is in pxe_interface" in result.stdout
    assert "✓ PXE interface address: 10.99.0.1/24; racker serves as 10.99.0.1/24" in result.stdout
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


EXAMPLE4 = Path(__file__).parents[3] / "fixtures" / "oem" / "example4"
MGMT_PRIMARY = "00:11:22:33:44:00"  # example4's management row


def _add_nic(net: object, name: str, mac: str) -> None:
    """Another Ethernet NIC (a veth whose peer stays in the root namespace) in the server's."""
    from tests.support.netns import sh, unique

    peer = unique("rkp")
    ns = net.server.name  # type: ignore[attr-defined]
    sh("ip", "link", "add", peer, "type", "veth", "peer", "name", f"{peer}x")
    sh("ip", "link", "set", f"{peer}x", "netns", ns, "name", name, "address", mac)
    sh("ip", "-n", ns, "link", "set", name, "up")


@pytest.fixture
def oem4(tmp_path: Path) -> Path:
    directory = tmp_path / "oem4"
    shutil.copytree(EXAMPLE4, directory)
    (directory / "pxe_interface").unlink()
    write_credentials(directory, "admin", Secret("pw"))
    return directory


def test_four_columns_two_nics_the_other_one_is_the_pxe_nic(oem4: Path) -> None:
    # The management node: its primary NIC (public side) and one more NIC, which has no
    # address yet. A fresh node: racker will serve the default subnet there.
    with link(server_ip="", server_mac="52:54:00:99:77:01") as net:
        _add_nic(net, "public0", MGMT_PRIMARY)
        result = net.server.run(RACKER, "factory", "check", "--oem-dir", str(oem4), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "✓ PXE interface pxe0 (52:54:00:99:77:01): the one Ethernet NIC besides the management"
        " row's public0" in result.stdout
    )
    assert "✓ PXE interface address: none yet; racker serve will add 172.24.213.1/24" in (
        result.stdout
    )


def test_four_columns_three_nics_is_ambiguous(oem4: Path) -> None:
    with link(server_ip="", server_mac="52:54:00:99:77:01") as net:
        _add_nic(net, "public0", MGMT_PRIMARY)
        _add_nic(net, "extra0", "52:54:00:99:77:02")
        result = net.server.run(RACKER, "factory", "check", "--oem-dir", str(oem4), check=False)
    assert result.returncode == 1, result.stdout
    assert "cannot tell which interface is the PXE interface (Ethernet NICs besides public0:" in (
        result.stdout
    )
    assert "write its MAC to pxe_interface" in result.stdout


def test_an_address_in_another_subnet_is_an_error_and_left_alone(oem: Path, tmp_path: Path) -> None:
    config = tmp_path / "racker.yaml"
    config.write_text("network:\n  subnet: 172.24.213.0/24\n")
    with link(server_ip="10.99.0.1", server_mac="52:54:00:99:02:01") as net:
        check = net.server.run(
            RACKER, "--config", str(config), "factory", "check", "--oem-dir", str(oem), check=False
        )
        serve = net.server.run(
            RACKER, "--config", str(config), "serve", "--oem-dir", str(oem),
            "--state-dir", str(tmp_path / "state"), check=False, timeout=30,
        )  # fmt: skip
        after = net.server.run("ip", "-4", "-o", "addr", "show", "dev", "pxe0")
    message = "the PXE interface has 10.99.0.1/24, outside network.subnet 172.24.213.0/24"
    assert check.returncode == 1 and message in check.stdout, check.stdout
    assert serve.returncode != 0 and message in serve.stderr, serve.stderr
    assert "10.99.0.1/24" in after.stdout and "172.24.213" not in after.stdout
