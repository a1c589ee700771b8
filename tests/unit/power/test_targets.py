"""NODE references and BMC addresses (racker.power.targets), as tables."""

from __future__ import annotations

import ipaddress

import pytest

from racker.errors import BmcNotConfigured, ConfigError, NodeNotFound
from racker.model import AddressKind, Inventory
from racker.power.base import BmcCredentials
from racker.power.targets import (
    BmcAddress,
    bmc_target,
    bmc_targets,
    find_node,
    parse_address,
    parse_host_port,
    select_nodes,
    static_addresses,
)
from racker.rack.allocation import Allocation


@pytest.mark.parametrize(
    ("ref", "index"),
    [
        ("52:54:00:00:00:03", 3),  # primary MAC
        ("52-54-00-00-00-03", 3),
        ("52:54:00:00:01:04", 4),  # BMC MAC
        ("52:54:00:00:01:04".upper(), 4),
        ("worker-000003", 3),  # hostname
        ("Controller-000002", 2),
        ("4", 4),  # row number
        (" 2 ", 2),
        ("9", None),
        ("worker-ffffff", None),
        ("52:54:00:00:00:99", None),
    ],
)
def test_find_node(inventory: Inventory, ref: str, index: int | None) -> None:
    found = find_node(inventory, ref)
    assert (found.index if found else None) == index


def test_select_nodes_keeps_order_and_drops_repeats(inventory: Inventory) -> None:
    chosen = select_nodes(inventory, ["4", "worker-000003", "52:54:00:00:01:04"])
    assert [n.index for n in chosen] == [4, 3]


def test_select_all_skips_the_management_node(inventory: Inventory) -> None:
    assert [n.index for n in select_nodes(inventory, [], all_nodes=True)] == [2, 3, 4]


@pytest.mark.parametrize(
    ("refs", "all_nodes", "text"),
    [
        (["7"], False, "no node '7'"),
        ([], False, "no NODE given"),
        (["2"], True, "either NODE arguments or --all"),
        (["1"], False, "management node"),
    ],
)
def test_select_nodes_errors(
    inventory: Inventory, refs: list[str], all_nodes: bool, text: str
) -> None:
    with pytest.raises(NodeNotFound, match=text) as info:
        select_nodes(inventory, refs, all_nodes)
    assert info.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.1.0.5", ("10.1.0.5", 623)),
        ("10.1.0.5:6230", ("10.1.0.5", 6230)),
        ("bmc-3.rack", ("bmc-3.rack", 623)),
        ("[fd00::5]:624", ("fd00::5", 624)),
        ("[fd00::5]", ("fd00::5", 623)),
        ("fd00::5", ("fd00::5", 623)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["", "host:", "host:0", "host:70000", "host:x", "[fd00::5", ":623"]
)
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_host_port(text)


def test_static_addresses_accept_every_kind_of_node_reference(inventory: Inventory) -> None:
    static = static_addresses(
        inventory, {"2": "127.0.0.2", "worker-000003": "127.0.0.3:7000", "52:54:00:00:01:04": "h"}
    )
    assert static == {
        "52:54:00:00:00:02": BmcAddress("127.0.0.2", 623),
        "52:54:00:00:00:03": BmcAddress("127.0.0.3", 7000),
        "52:54:00:00:00:04": BmcAddress("h", 623),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://bmc-3.rack", BmcAddress("bmc-3.rack", 443, "https")),
        ("https://10.1.0.5:8443/", BmcAddress("10.1.0.5", 8443, "https")),
        ("HTTPS://10.1.0.5/redfish/v1/", BmcAddress("10.1.0.5", 443, "https")),
        ("http://127.0.0.1:8000", BmcAddress("127.0.0.1", 8000, "http")),
        ("https://[fd00::5]:8443", BmcAddress("fd00::5", 8443, "https")),
        ("10.1.0.5:6230", BmcAddress("10.1.0.5", 6230, None)),
    ],
)
def test_parse_address_takes_redfish_urls(text: str, expected: BmcAddress) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ftp://10.1.0.5", "starts with https:// or http://"),
        ("https://admin:pw@10.1.0.5", "no user or password in a BMC URL"),
        ("https://10.1.0.5/other", "scheme, host and port only"),
        ("https://10.1.0.5:99999", "port is not a number"),
        ("https://:443", "no host"),
    ],
)
def test_parse_address_rejects_other_urls(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_address(text)


def test_a_url_pins_the_bmc_to_redfish(inventory: Inventory, credentials: BmcCredentials) -> None:
    static = static_addresses(
        inventory, {"3": "https://10.9.0.3:8443", "4": "10.9.0.4", "2": "http://127.0.0.1:8000"}
    )
    three, four, two = inventory.nodes[2], inventory.nodes[3], inventory.nodes[1]
    t3 = bmc_target(three, credentials, {}, static)
    assert (t3.scheme, t3.address, t3.redfish_url) == (
        "https",
        "https://10.9.0.3:8443",
        "https://10.9.0.3:8443",
    )
    assert t3.node_macs == (three.primary_mac,)
    t4 = bmc_target(four, credentials, {}, static)
    # host alone: IPMI at 623, a Redfish service (if any) at https://host
    assert (t4.scheme, t4.address, t4.redfish_url) == (None, "10.9.0.4", "https://10.9.0.4")
    t2 = bmc_target(two, credentials, {}, static)
    assert (t2.address, t2.redfish_url) == ("http://127.0.0.1:8000", "http://127.0.0.1:8000")


def test_static_addresses_report_every_problem(inventory: Inventory) -> None:
    with pytest.raises(ConfigError) as info:
        static_addresses(
            inventory, {"nope": "1.2.3.4", "3": "h:99999", "2": "a", "controller-000002": "b"}
        )
    messages = [p.message for p in info.value.problems]
    assert messages == [
        "bmc.addresses.nope: no such node",
        "bmc.addresses.3: port '99999' is not a number from 1 to 65535",
        "bmc.addresses.controller-000002: node controller-000002 given twice",
    ]


def _alloc(mac: str, address: str, kind: AddressKind = AddressKind.BMC) -> Allocation:
    return Allocation(mac, kind, ipaddress.IPv4Address(address), 0.0)


def test_bmc_target_from_allocation_or_override(
    inventory: Inventory, credentials: BmcCredentials
) -> None:
    allocations = {
        "52:54:00:00:01:03": _alloc("52:54:00:00:01:03", "10.0.0.131"),
        "52:54:00:00:01:04": _alloc("52:54:00:00:01:04", "10.0.0.132"),
    }
    static = {"52:54:00:00:00:04": BmcAddress("127.0.0.4", 6230)}
    three, four = inventory.nodes[2], inventory.nodes[3]
    t3 = bmc_target(three, credentials, allocations, static)
    assert (t3.node, t3.host, t3.port, t3.mac) == (
        "worker-000003",
        "10.0.0.131",
        623,
        three.primary_mac,
    )
    t4 = bmc_target(four, credentials, allocations, static)
    assert (t4.host, t4.port, t4.address) == ("127.0.0.4", 6230, "127.0.0.4:6230")
    # A Redfish service on such a BMC would be looked for on that port too.
    assert t4.redfish_url == "https://127.0.0.4:6230"


def test_bmc_targets_reports_missing_address_and_credentials_per_node(
    inventory: Inventory, credentials: BmcCredentials
) -> None:
    allocations = {
        "52:54:00:00:01:03": _alloc("52:54:00:00:01:03", "10.0.0.131"),
        # A node address on the BMC MAC must not be taken for the BMC's.
        "52:54:00:00:01:02": _alloc("52:54:00:00:01:02", "10.0.0.70", AddressKind.NODE),
    }
    results = bmc_targets(inventory.nodes[1:3], credentials, allocations, {})
    assert isinstance(results[0][1], BmcNotConfigured)
    assert "no address allocated for BMC MAC 52:54:00:00:01:02" in str(results[0][1])
    assert not isinstance(results[1][1], BmcNotConfigured)
    [(_, missing)] = bmc_targets(inventory.nodes[2:3], None, allocations, {})
    assert isinstance(missing, BmcNotConfigured)
    assert "no BMC credentials" in str(missing)
    assert missing.retryable is False
