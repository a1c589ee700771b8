"""racker never answers the management node's own NICs: it runs there, its PXE NIC has
racker's static address, and a DHCP client on that machine (Flatcar's zz-default.network on
another NIC, say) must not get an address from racker."""

from __future__ import annotations

import ipaddress

import pytest

from racker.dhcp.core import build_core
from racker.dhcp.settings import settings_from_config
from racker.model import AddressKind, Node
from racker.rack.allocation import Allocation
from tests.unit.dhcp.corekit import NODE, NODE_MAC, PLAN, UNKNOWN_MAC, config, feed, request

MGMT = Node(
    line=1,
    index=0,
    primary_mac="52:54:00:aa:00:00",
    bmc_mac="52:54:00:bb:00:00",
    secondary_mac="52:54:00:dd:00:00",
    node_type="worker",
)
IP = ipaddress.IPv4Address


def allocations() -> dict[str, Allocation]:
    rows = [
        Allocation(MGMT.primary_mac, AddressKind.NODE, IP("10.99.0.65"), 0.0),
        Allocation(MGMT.bmc_mac, AddressKind.BMC, IP("10.99.0.129"), 0.0),
        Allocation(NODE_MAC, AddressKind.NODE, IP("10.99.0.64"), 0.0),
    ]
    return {a.mac: a for a in rows}


@pytest.mark.parametrize("unknown", ["ignore", "pool"])
@pytest.mark.parametrize("mac", [MGMT.primary_mac, MGMT.bmc_mac, MGMT.secondary_mac])
def test_the_management_node_is_never_answered(unknown: str, mac: str) -> None:
    settings = settings_from_config(
        config(unknown), PLAN, allocations(), 8080, [MGMT, NODE], management=MGMT
    )
    assert set(settings.ignored) == {MGMT.primary_mac, MGMT.bmc_mac, MGMT.secondary_mac}
    assert MGMT.primary_mac not in settings.reservations
    core = build_core(settings)
    for mtype in ("discover", "request"):
        outcome = feed(core, request(mtype, mac))
        assert outcome.reply is None
        assert "the management node's own NIC" in outcome.events[0].reason  # type: ignore[attr-defined]
    # everyone else as before: the rack's node, and (in pool mode) an unknown client
    assert feed(core, request("discover", NODE_MAC)).reply is not None
    assert (feed(core, request("discover", UNKNOWN_MAC)).reply is not None) == (unknown == "pool")


def test_without_a_management_row_nothing_is_ignored() -> None:
    settings = settings_from_config(config(), PLAN, allocations(), 8080, [MGMT, NODE])
    assert settings.ignored == frozenset()
    assert feed(build_core(settings), request("discover", MGMT.primary_mac)).reply is not None
