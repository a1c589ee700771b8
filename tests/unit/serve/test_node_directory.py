"""The node directory: who is who, and which nodes boot from disk (the shared boot policy)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from racker.app.directory import NodeDirectory
from racker.model import BootAction, NodeState
from racker.rack.addressing import plan_addresses
from racker.rack.config import Config
from racker.rack.interfaces import LocalInterface
from racker.rack.loading import Rack
from racker.rack.oem import Secret, read_oem, write_credentials
from racker.store import Store

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"
MGMT, NODE1, NODE2 = "52:54:00:99:00:01", "52:54:00:99:00:10", "52:54:00:99:00:20"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rack(tmp_path: Path) -> Rack:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    write_credentials(oem, "admin", Secret("pw"))
    address = ipaddress.IPv4Interface("10.99.0.1/24")
    interface = LocalInterface("pxe0", "52:54:00:99:02:01", 1500, (address,))
    config = Config()
    return Rack(
        config, read_oem(oem), interface, plan_addresses(config, (address,)), tmp_path / "state"
    )


def test_addresses_and_lookups(rack: Rack) -> None:
    with Store.open(rack.state_dir) as store:
        directory = NodeDirectory(rack, store)
        assert directory.address_of(MGMT) == "10.99.0.64"
        assert directory.address_of(NODE1) == "10.99.0.65"
        assert directory.address_of("52:54:00:99:01:10") == "10.99.0.129"  # its BMC
        assert directory.mac_for_ip("10.99.0.65") == NODE1
        assert directory.mac_for_ip("10.99.0.250") is None
        node = directory.node("52:54:00:99:02:10")  # a secondary MAC finds the row too
        assert node is not None
        assert node.primary_mac == NODE1


def test_boot_policy_follows_state_written_by_another_process(rack: Rack) -> None:
    clock = Clock()
    with Store.open(rack.state_dir) as store, Store.open(rack.state_dir) as other:
        directory = NodeDirectory(rack, store, clock=clock)
        assert directory.boot_action(MGMT) is BootAction.DISK  # never provisioned
        assert directory.boot_action(NODE1) is BootAction.PXE
        other.set_node_state(NodeState(NODE1, "installed", 1.0))
        # Within the TTL the cached state answers; after it, the new state is read.
        assert directory.boot_action(NODE1) is BootAction.PXE
        clock.now += NodeDirectory.STATE_TTL
        assert directory.boot_action(NODE1) is BootAction.DISK
        assert directory.boot_action(NODE2) is BootAction.PXE
        assert not directory.may_fetch_boot_files("10.99.0.65")
        assert directory.may_fetch_boot_files("10.99.0.66")
        directory.overrides[NODE1] = BootAction.PXE  # e.g. bootstrap --reprovision
        assert directory.boot_action(NODE1) is BootAction.PXE
