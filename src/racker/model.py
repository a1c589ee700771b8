"""The rack's data model (layer 0: stdlib only, frozen dataclasses).

MAC addresses are normalised exactly once, when they are parsed (``parse_mac``), to the
lowercase colon form ``aa:bb:cc:dd:ee:ff``; everything downstream compares plain strings.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_BARE_MAC_RE = re.compile(r"^[0-9a-fA-F]{12}$")


def parse_mac(text: str) -> str | None:
    """Return the normalised MAC for ``text`` (':' or '-' separated, any case), else None."""
    text = text.strip()
    if _MAC_RE.match(text):
        return text.replace("-", ":").lower()
    return None


def looks_like_mac(text: str) -> bool:
    """True for anything a human would take for a MAC (used to catch swapped columns)."""
    text = text.strip()
    return bool(_MAC_RE.match(text) or _BARE_MAC_RE.match(text))


def mac_to_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def bytes_to_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw[:6])


class AddressKind(enum.StrEnum):
    """What an allocated address is for: a server's primary NIC or its BMC."""

    NODE = "node"
    BMC = "bmc"


@dataclass(frozen=True)
class Node:
    """One row of nodes.csv."""

    line: int  # line number in nodes.csv (1-based), used in every message about the row
    index: int  # row number among the data rows (1-based), accepted as NODE on the CLI
    primary_mac: str
    bmc_mac: str
    secondary_mac: str | None
    node_type: str
    comment: str = ""

    @property
    def hostname(self) -> str:
        """A stable name: node type plus the last three bytes of the primary MAC.

        Stable when rows are added, removed or reordered, unlike a row number.
        """
        return f"{self.node_type}-{self.primary_mac.replace(':', '')[6:]}"

    @property
    def macs(self) -> tuple[str, ...]:
        macs = [self.primary_mac, self.bmc_mac]
        if self.secondary_mac:
            macs.append(self.secondary_mac)
        return tuple(macs)


@dataclass(frozen=True)
class Inventory:
    """The parsed rack: every row, and which one is the management node (if known)."""

    source: str
    nodes: tuple[Node, ...]
    management: Node | None = None
    pxe_interface_mac: str | None = None

    @property
    def provisionable(self) -> tuple[Node, ...]:
        """Every node except the management node, which is never provisioned."""
        return tuple(n for n in self.nodes if n is not self.management)

    def by_mac(self, mac: str) -> Node | None:
        for node in self.nodes:
            if mac in node.macs:
                return node
        return None

    def types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.provisionable:
            counts[node.node_type] = counts.get(node.node_type, 0) + 1
        return counts

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


@dataclass(frozen=True)
class AddressRange:
    """An inclusive range of IPv4 addresses, written ``first-last`` in the config."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def __post_init__(self) -> None:
        if int(self.last) < int(self.first):
            raise ValueError(f"range end {self.last} is before its start {self.first}")

    @classmethod
    def parse(cls, text: str) -> AddressRange:
        first, sep, last = str(text).partition("-")
        if not sep:
            raise ValueError("expected FIRST-LAST, e.g. 10.0.0.10-10.0.0.99")
        return cls(ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip()))

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, ipaddress.IPv4Address):
            return False
        return int(self.first) <= int(addr) <= int(self.last)

    def __iter__(self) -> Iterator[ipaddress.IPv4Address]:
        for value in range(int(self.first), int(self.last) + 1):
            yield ipaddress.IPv4Address(value)

    def __len__(self) -> int:
        return int(self.last) - int(self.first) + 1

    def overlaps(self, other: AddressRange) -> bool:
        return int(self.first) <= int(other.last) and int(other.first) <= int(self.last)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True)
class NetworkPlan:
    """The rack-internal network as racker serves it."""

    subnet: ipaddress.IPv4Network
    server: ipaddress.IPv4Address  # the management node's address on the PXE interface
    nodes: AddressRange
    bmcs: AddressRange
    pool: AddressRange | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: tuple[ipaddress.IPv4Address, ...] = field(default_factory=tuple)

    def range_for(self, kind: AddressKind) -> AddressRange:
        return self.nodes if kind is AddressKind.NODE else self.bmcs


class BootAction(enum.StrEnum):
    """What the boot stack does for a node that network-boots (shared by DHCP, TFTP, HTTP)."""

    PXE = "pxe"  # offer a boot file / loader / iPXE script
    DISK = "disk"  # address only, no boot file: the node is installed and boots from disk


# The per-node policy: given a MAC, what to do. The composition root builds it from the
# orchestrator's state; servers only call it.
BootPolicy = Callable[[str], BootAction]


def always_pxe(_mac: str) -> BootAction:
    return BootAction.PXE


@dataclass(frozen=True)
class NodeState:
    """A node's provisioning state as stored: the phase, since when, which attempt, why."""

    mac: str
    state: str
    since: float
    attempt: int = 0
    reason: str = ""
    data: dict[str, Any] | None = None
