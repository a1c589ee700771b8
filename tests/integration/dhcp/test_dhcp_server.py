"""racker's DHCP server against real clients (busybox udhcpc, ISC dhclient, perfdhcp, a relay
socket) in throwaway network namespaces."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from racker.dhcp.codec import decode
from tests.integration.dhcp.support import (
    Served,
    default_spec,
    relay_exchange,
    running,
    start,
    stop,
    udhcpc,
)
from tests.support.netns import Link, link

pytestmark = pytest.mark.root

CLIENT_MAC = "52:54:00:aa:00:01"
NODE_IP = "10.99.0.64"


@pytest.fixture
def net() -> Iterator[Link]:
    with link(client_mac=CLIENT_MAC) as made:
        yield made


@pytest.fixture
def served(net: Link, tmp_path: Path) -> Iterator[Served]:
    with running(net, tmp_path, reservations={CLIENT_MAC: NODE_IP}) as server:
        yield server


def hexopt(text: str) -> str:
    return text.encode().hex()


def test_udhcpc_gets_its_reserved_address(served: Served, net: Link, tmp_path: Path) -> None:
    lease = udhcpc(net.client, net.cli_if, tmp_path)
    assert lease is not None, served.stderr()
    assert lease["ip"] == NODE_IP
    assert lease["serverid"] == "10.99.0.1"
    assert lease["subnet"] == "255.255.255.0"
    kinds = [(e["kind"], e["direction"]) for e in served.events()]
    assert kinds[:4] == [("discover", "in"), ("offer", "out"), ("request", "in"), ("ack", "out")]


@pytest.mark.slow
def test_dhclient_gets_its_reserved_address(served: Served, net: Link, tmp_path: Path) -> None:
    script = tmp_path / "dhclient.sh"
    script.write_text(
        '#!/bin/sh\necho "$reason $new_ip_address" >> "$(dirname "$0")/dhclient.out"\n'
    )
    script.chmod(0o755)
    pidfile = tmp_path / "dhclient.pid"
    result = net.client.run(
        "dhclient", "-1", "-v", "-sf", str(script), "-lf", str(tmp_path / "leases"),
        "-pf", str(pidfile), net.cli_if, check=False, timeout=60,
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert f"BOUND {NODE_IP}" in (tmp_path / "dhclient.out").read_text()
    finally:
        if pidfile.exists():
            net.client.run("kill", pidfile.read_text().strip(), check=False)


IPXE_175 = "b105018086100eeb030100001701012201011301011101012701011901012901011001022101011501"
SCRIPT = "http://10.99.0.1:8080/boot.ipxe"
PXE_CASES = [
    # (udhcpc options, expected boot file)
    (
        ["-x", "93:0000", "-V", "PXEClient:Arch:00000:UNDI:002001"],
        "undionly.kpxe",
    ),
    (["-x", "93:0007", "-V", "PXEClient:Arch:00007:UNDI:003000"], "ipxe.efi"),
    (["-V", "PXEClient:Arch:00009"], "ipxe.efi"),
    (
        ["-x", "93:0010", "-V", "HTTPClient:Arch:00016"],
        "http://10.99.0.1:8080/ipxe.efi",
    ),
    (["-x", "93:000b"], ""),  # arm64 without a configured loader: no boot file
    (["-x", "93:0000", "-x", f"77:{hexopt('iPXE')}"], SCRIPT),
    (["-x", "93:0007", "-x", f"77:04{hexopt('iPXE')}"], SCRIPT),
    (["-x", "93:0000", "-x", f"175:{IPXE_175}"], SCRIPT),
]


@pytest.mark.parametrize(("options", "boot_file"), PXE_CASES)
def test_udhcpc_with_pxe_options_gets_the_right_boot_file(
    served: Served, net: Link, tmp_path: Path, options: list[str], boot_file: str
) -> None:
    lease = udhcpc(net.client, net.cli_if, tmp_path, *options)
    assert lease is not None, served.stderr()
    assert lease["ip"] == NODE_IP
    assert lease["boot_file"] == boot_file
    assert lease["siaddr"] == ("10.99.0.1" if boot_file else "")  # udhcpc omits 0.0.0.0


def test_relayed_request_is_served_from_the_relay_segment(net: Link, tmp_path: Path) -> None:
    net.client.run("ip", "addr", "add", "10.98.0.2/20", "dev", net.cli_if)
    net.client.run("ip", "route", "add", "10.99.0.0/24", "dev", net.cli_if)
    net.server.run("ip", "route", "add", "10.98.0.0/20", "dev", net.srv_if)
    relays = [{"subnet": "10.98.0.0/20", "pool": "10.98.1.0-10.98.1.99", "gateway": "10.98.0.1"}]
    with running(net, tmp_path, unknown_clients="pool", relays=relays) as served:
        offer, ack = relay_exchange(net, "10.98.0.2", bytes.fromhex("0a0000000001"))
        assert decode(offer).options[53] == b"\x02"
        assert socket.inet_ntoa(decode(offer).yiaddr) == "10.98.1.0"
        assert decode(ack).options[53] == b"\x05"
        assert decode(ack).options[1] == socket.inet_aton("255.255.240.0")
        # perfdhcp always acts as a relay (giaddr = its own address): a short clean run.
        result = net.client.run(
            "perfdhcp", "-4", "-l", net.cli_if, "-r", "20", "-n", "20", "-R", "20", "-W", "500000",
            net.server_ip,
            check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr + served.stderr()


def test_the_server_does_not_read_its_own_replies(net: Link, tmp_path: Path) -> None:
    """Each relayed request is read once: from the UDP socket, which keeps what comes from port
    67, and not from the packet socket too, whose filter leaves port 67 to it. Neither reads
    the server's own replies (UDP datagrams from port 67; the packet socket, bound to ETH_P_IP
    rather than ETH_P_ALL, never sees outgoing frames): it would count and drop them."""
    net.client.run("ip", "addr", "add", "10.98.0.2/20", "dev", net.cli_if)
    net.client.run("ip", "route", "add", "10.99.0.0/24", "dev", net.cli_if)
    net.server.run("ip", "route", "add", "10.98.0.0/20", "dev", net.srv_if)
    relays = [{"subnet": "10.98.0.0/20", "pool": "10.98.1.0-10.98.1.99"}]
    spec = default_spec(net, tmp_path, unknown_clients="pool", relays=relays)
    served = start(net, tmp_path, spec)
    try:
        _offer, ack = relay_exchange(net, "10.98.0.2", bytes.fromhex("0a0000000002"))
        assert decode(ack).options[53] == b"\x05"
    finally:
        closed = stop(served).strip().splitlines()[-1]
    assert closed == "closed received=2 sent=2 dropped=0", served.stderr()


def test_unknown_mac_is_ignored_and_reported_once(net: Link, tmp_path: Path) -> None:
    with running(net, tmp_path) as served:
        assert udhcpc(net.client, net.cli_if, tmp_path, tries=2) is None
        discoveries = [e for e in served.events() if e["kind"] == "discovery"]
        assert [d["mac"] for d in discoveries] == [CLIENT_MAC]
        assert sum(e["kind"] == "discover" for e in served.events()) >= 2


def test_unknown_mac_gets_a_pool_address(net: Link, tmp_path: Path) -> None:
    with running(net, tmp_path, unknown_clients="pool") as served:
        lease = udhcpc(net.client, net.cli_if, tmp_path)
        assert lease is not None, served.stderr()
        assert lease["ip"] == "10.99.0.192"


def test_restart_keeps_leases(net: Link, tmp_path: Path) -> None:
    spec = default_spec(net, tmp_path, unknown_clients="pool")
    served = start(net, tmp_path, spec)
    try:
        first = udhcpc(net.client, net.cli_if, tmp_path)
        assert first is not None
        assert first["ip"] == "10.99.0.192"
    finally:
        stop(served)
    rows = (
        sqlite3.connect(tmp_path / "state" / "racker.db")
        .execute("SELECT address, mac, state FROM leases")
        .fetchall()
    )
    assert rows == [("10.99.0.192", CLIENT_MAC, "bound")]
    served = start(net, tmp_path, spec)
    try:
        net.client.run("ip", "link", "set", net.cli_if, "address", "52:54:00:aa:00:02")
        other = udhcpc(net.client, net.cli_if, tmp_path)
        assert other is not None
        assert other["ip"] != "10.99.0.192"  # still leased to the first client
        net.client.run("ip", "link", "set", net.cli_if, "address", CLIENT_MAC)
        again = udhcpc(net.client, net.cli_if, tmp_path)
        assert again is not None
        assert again["ip"] == "10.99.0.192"
    finally:
        stop(served)


@pytest.mark.slow  # udhcpc waits 10 s after a DECLINE before it asks again (RFC 2131 §3.1)
def test_a_reserved_address_in_use_is_declined_logged_and_not_offered_again(
    net: Link, tmp_path: Path
) -> None:
    # Another host on the segment answers ARP for the node's reserved address: busybox udhcpc
    # with -a (ARP validation, RFC 2131 §4.4.1) declines it. racker warns with the MAC and the
    # address and does not offer it again during the quarantine.
    net.server.run("ip", "addr", "add", f"{NODE_IP}/24", "dev", net.srv_if)
    with running(net, tmp_path, reservations={CLIENT_MAC: NODE_IP}) as served:
        assert udhcpc(net.client, net.cli_if, tmp_path, "-a", tries=3) is None
        events = served.events()
        declines = [e for e in events if e["kind"] == "decline"]
        assert declines and declines[0]["address"] == NODE_IP
        after = [e for e in events if e["kind"] == "discover" and e["ts"] > declines[0]["ts"]]
        assert after and all("was declined" in e["reason"] for e in after)
        assert not any(e["kind"] == "offer" and e["ts"] > declines[0]["ts"] for e in events), (
            "the declined reservation was offered again"
        )
    assert f"DHCP: {CLIENT_MAC} declined {NODE_IP}: its reserved address" in served.stderr()
