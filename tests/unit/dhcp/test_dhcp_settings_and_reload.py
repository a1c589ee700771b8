"""From racker's configuration to the DHCP settings (one function, at start and on SIGHUP), and
``DhcpServer.reload``: pending lease changes persisted, then a core for the new settings that
holds the leases (no sockets: the server is never started here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from racker.dhcp.core import DhcpCore, build_core
from racker.dhcp.leases import BOUND, DECLINED
from racker.dhcp.server import DhcpServer
from racker.dhcp.settings import DhcpSettings, core_settings, settings_from_config
from racker.errors import ConfigError
from racker.events import Event
from racker.model import AddressKind, BootAction, Node
from racker.rack.allocation import Allocation
from racker.rack.config import parse_config
from racker.store import Store
from tests.unit.dhcp.corekit import (
    BMC_IP,
    BMC_MAC,
    IP,
    NODE_IP,
    NODE_MAC,
    PLAN,
    RESERVATIONS,
    SERVER,
    UNKNOWN_MAC,
    config,
    feed,
    ip,
    reply_of,
    request,
)

PXE = [("client_arch", b"\x00\x07"), ("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003016")]
NEW_MAC = "52:54:00:aa:00:09"
NEW_IP = "10.99.0.70"


def settings(pool_lease_time: int = 600, **reserved: str) -> DhcpSettings:
    cfg = config("pool")
    cfg = dataclasses.replace(
        cfg, dhcp=dataclasses.replace(cfg.dhcp, pool_lease_time=pool_lease_time)
    )
    reservations = {**RESERVATIONS, **{mac: IP(a) for mac, a in reserved.items()}}
    return DhcpSettings(core_settings(cfg, PLAN, 8080), reservations, frozenset({BMC_MAC}))


def server_with(core: DhcpCore, store: Store | None) -> DhcpServer:
    events: list[Event] = []
    return DhcpServer("dhcp-test0", core, events.append, store)


def bind(core: DhcpCore, mac: str, now: float = 1000.0) -> str:
    """DISCOVER + REQUEST; the address bound."""
    offer = reply_of(feed(core, request("discover", mac), now))
    address = ip(offer.yiaddr)
    selecting = [("server_id", SERVER), ("requested_addr", address)]
    assert reply_of(feed(core, request("request", mac, selecting), now)).options[53] == b"\x05"
    return address


def lease_time(outcome) -> int:  # type: ignore[no-untyped-def]
    return int.from_bytes(reply_of(outcome).options[51], "big")


def test_settings_from_config_reserves_every_allocated_mac_and_labels_the_bmcs() -> None:
    allocations = {
        NODE_MAC: Allocation(NODE_MAC, AddressKind.NODE, IP(NODE_IP), 0.0),
        BMC_MAC: Allocation(BMC_MAC, AddressKind.BMC, IP(BMC_IP), 0.0),
    }
    got = settings_from_config(config(), PLAN, allocations, 8080)
    assert got.core == core_settings(config(), PLAN, 8080)
    assert dict(got.reservations) == {NODE_MAC: IP(NODE_IP), BMC_MAC: IP(BMC_IP)}
    assert got.bmc_macs == {BMC_MAC}
    core = build_core(got)
    assert ip(reply_of(feed(core, request("discover", BMC_MAC))).yiaddr) == BMC_IP
    assert feed(core, request("discover", BMC_MAC)).events[0].client_kind == "bmc"  # type: ignore[attr-defined]
    assert feed(core, request("discover", NODE_MAC)).events[0].client_kind != "bmc"  # type: ignore[attr-defined]


def test_the_http_port_is_the_configs_unless_given() -> None:
    assert settings_from_config(config(), PLAN, {}).core.boot.http_port == config().http.port
    assert settings_from_config(config(), PLAN, {}, 8123).core.boot.http_port == 8123


def test_uefi_http_names_the_macs_of_the_node_types_it_lists() -> None:
    nodes = [
        Node(2, 1, "52:54:00:aa:00:01", "52:54:00:bb:00:01", "52:54:00:aa:10:01", "worker"),
        Node(3, 2, "52:54:00:aa:00:02", "52:54:00:bb:00:02", None, "storage"),
    ]
    boot = settings_from_config(config(uefi_http=["worker"]), PLAN, {}, nodes=nodes).core.boot
    # Both of a worker's NICs may PXE boot; its BMC does not, and a storage node keeps TFTP.
    assert (boot.uefi_http, boot.uefi_http_macs) == (
        False,
        {"52:54:00:aa:00:01", "52:54:00:aa:10:01"},
    )
    every = settings_from_config(config(uefi_http=True), PLAN, {}, nodes=nodes).core.boot
    assert (every.uefi_http, every.uefi_http_macs) == (True, frozenset())
    off = settings_from_config(config(), PLAN, {}, nodes=nodes).core.boot
    assert (off.uefi_http, off.uefi_http_macs) == (False, frozenset())


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("[worker, storage]", ["worker", "storage"]), ("yes", True)],
)
def test_boot_uefi_http_in_racker_yaml(text: str, value: bool | list[str]) -> None:
    assert parse_config(f"boot:\n  uefi_http: {text}\n").boot.uefi_http == value


@pytest.mark.parametrize("text", ["worker", "3", "{a: b}"])
def test_boot_uefi_http_refuses_anything_but_a_boolean_or_a_list(text: str) -> None:
    with pytest.raises(ConfigError, match=r"boot\.uefi_http"):
        parse_config(f"boot:\n  uefi_http: {text}\n")


def test_reload_persists_pending_leases_and_the_new_core_holds_them(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    server = server_with(build_core(settings(), store.leases()), store)
    old = server.core
    address = bind(old, UNKNOWN_MAC)
    feed(old, request("decline", NODE_MAC, [("server_id", SERVER), ("requested_addr", NODE_IP)]))
    assert old.leases.pending == 2
    server.reload(settings(pool_lease_time=1200))
    # Written before the swap, as the strings the store has always held.
    assert {(str(x.address), x.mac, x.state) for x in store.leases()} == {
        (NODE_IP, NODE_MAC, "declined"),
        (address, UNKNOWN_MAC, "bound"),
    }
    assert server.core is not old
    held = server.core.leases.for_mac(UNKNOWN_MAC)
    assert held is not None and held.state is BOUND and held.address == int(IP(address))
    quarantine = server.core.leases.at(int(IP(NODE_IP)))
    assert quarantine is not None and quarantine.state is DECLINED
    assert server.core.leases.pending == 0
    # The new settings: a renewal gets the new pool lease time, its address kept.
    renewal = feed(server.core, request("request", UNKNOWN_MAC, ciaddr=address), 1000.0)
    assert ip(reply_of(renewal).yiaddr) == address
    assert lease_time(renewal) == 1200


def test_reload_takes_new_reservations() -> None:
    server = server_with(build_core(settings()), None)
    assert feed(server.core, request("discover", NEW_MAC)).events[0].address is None  # type: ignore[attr-defined]
    server.reload(settings(**{NEW_MAC: NEW_IP}))
    assert ip(reply_of(feed(server.core, request("discover", NEW_MAC))).yiaddr) == NEW_IP


def test_reload_without_a_store_keeps_the_leases_held_in_memory() -> None:
    server = server_with(build_core(settings()), None)
    address = bind(server.core, UNKNOWN_MAC)
    feed(server.core, request("discover", "52:54:00:cc:00:02"))  # an offer: not carried over
    server.reload(settings())
    held = server.core.leases.for_mac(UNKNOWN_MAC)
    assert held is not None and held.state is BOUND and held.address == int(IP(address))
    assert server.core.leases.for_mac("52:54:00:cc:00:02") is None


def test_the_new_core_keeps_the_boot_policy_and_the_event_budget() -> None:
    def policy(_mac: str) -> BootAction:
        return BootAction.DISK

    core = build_core(settings(), policy=policy, keeps=lambda _mac, _count: False)
    server = server_with(core, None)
    server.reload(settings())
    out = feed(server.core, request("discover", NODE_MAC, PXE))
    assert reply_of(out).file == b""  # boots from disk: no boot file
    assert out.events == []  # nobody keeps them: not built


def test_the_lease_holder_follows_the_core_a_reload_swaps_in() -> None:
    server = server_with(build_core(settings()), None)
    first = bind(server.core, UNKNOWN_MAC)
    assert server.lease_holder(first) == UNKNOWN_MAC
    server.reload(settings())
    second = bind(server.core, "52:54:00:cc:00:02")
    assert server.lease_holder(first) == UNKNOWN_MAC
    assert server.lease_holder(second) == "52:54:00:cc:00:02"
    assert server.lease_holder("10.99.0.250") is None
