"""Client requests built with scapy (independent of racker's codec) and a core to feed them."""

from __future__ import annotations

import ipaddress
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP

from racker.dhcp.codec import Message, decode
from racker.dhcp.core import DhcpCore, Outcome, ReceiveInfo
from racker.dhcp.memo import MEMO_SIZE
from racker.dhcp.settings import core_settings
from racker.events import Keeps
from racker.model import AddressRange, BootAction, BootPolicy, NetworkPlan, Node
from racker.rack.config import BootConfig, Config, DhcpConfig, RelaySegment

IP = ipaddress.IPv4Address
SERVER = "10.99.0.1"
NODE_MAC = "52:54:00:aa:00:01"
NODE_IP = "10.99.0.64"
BMC_MAC = "52:54:00:bb:00:01"
BMC_IP = "10.99.0.128"
UNKNOWN_MAC = "52:54:00:cc:00:01"
RELAY_IP = "10.98.0.2"

PLAN = NetworkPlan(
    subnet=ipaddress.IPv4Network("10.99.0.0/24"),
    server=IP(SERVER),
    nodes=AddressRange.parse("10.99.0.64-10.99.0.127"),
    bmcs=AddressRange.parse("10.99.0.128-10.99.0.191"),
    pool=AddressRange.parse("10.99.0.192-10.99.0.254"),
    gateway=IP("10.99.0.254"),
    dns=(IP("10.99.0.53"),),
)
RESERVATIONS = {NODE_MAC: IP(NODE_IP), BMC_MAC: IP(BMC_IP)}
NODE = Node(
    line=2, index=1, primary_mac=NODE_MAC, bmc_mac=BMC_MAC, secondary_mac=None, node_type="worker"
)


def config(
    unknown: str = "ignore",
    arm64: str | None = None,
    relay_pool: str = "10.98.1.0-10.98.1.9",
    uefi_http: bool | list[str] = False,
) -> Config:
    relay = RelaySegment(
        ipaddress.IPv4Network("10.98.0.0/20"), AddressRange.parse(relay_pool), IP("10.98.0.1")
    )
    return Config(
        dhcp=DhcpConfig(unknown_clients=unknown, relays=[relay]),  # type: ignore[arg-type]
        boot=BootConfig(arm64_loader=arm64, uefi_http=uefi_http),
    )


def make_core(
    unknown: str = "ignore",
    arm64: str | None = None,
    disk: bool = False,
    leases: Any = (),
    relay_pool: str = "10.98.1.0-10.98.1.9",
    policy: BootPolicy | None = None,
    memo_size: int = MEMO_SIZE,
    keeps: Keeps | None = None,
    uefi_http: bool | list[str] = False,
) -> DhcpCore:
    if policy is None:
        policy = (lambda _mac: BootAction.DISK) if disk else (lambda _mac: BootAction.PXE)
    return DhcpCore(
        core_settings(
            config(unknown, arm64, relay_pool, uefi_http), PLAN, http_port=8080, nodes=[NODE]
        ),
        RESERVATIONS,
        leases,
        policy,
        [BMC_MAC],
        memo_size=memo_size,
        keeps=keeps,
    )


def request(
    mtype: str,
    mac: str = NODE_MAC,
    options: list[Any] | None = None,
    *,
    xid: int = 0x1234,
    flags: int = 0,
    ciaddr: str = "0.0.0.0",
    giaddr: str = "0.0.0.0",
    hops: int = 0,
) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    pkt = BOOTP(
        op=1, xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr, hops=hops, chaddr=chaddr
    ) / DHCP(options=[("message-type", mtype), *(options or []), "end"])
    return bytes(pkt)


def feed(core: DhcpCore, data: bytes, now: float = 1000.0, relayed: bool = False) -> Outcome:
    return core.handle(data, ReceiveInfo(relayed=relayed), now)


def reply_of(outcome: Outcome) -> Message:
    assert outcome.reply is not None, [e.to_dict() for e in outcome.events]
    return decode(outcome.reply)


def ip(raw: bytes) -> str:
    return str(IP(raw))
