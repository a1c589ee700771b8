"""The management node's own network interfaces (layer 2: asks iproute2).

``ip -j addr`` rather than /sys/class/net: it answers for the caller's network namespace,
which /sys (mounted once) does not when racker runs inside a namespace it entered.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from racker.errors import EnvironmentProblem
from racker.model import parse_mac

# Virtual link kinds that are never a server's cabled NIC. A veth counts as a NIC (it is one
# inside a network namespace) unless it is a bridge port, like a container's host end.
NOT_A_NIC = frozenset(
    {"bridge", "bond", "team", "vlan", "macvlan", "macvtap", "ipvlan", "vxlan", "geneve",
     "tun", "tap", "ifb", "dummy", "wireguard", "gre", "gretap", "ipip", "sit", "vrf"}
)  # fmt: skip


@dataclass(frozen=True)
class LocalInterface:
    name: str
    mac: str | None
    mtu: int
    ipv4: tuple[ipaddress.IPv4Interface, ...]
    # An Ethernet NIC that could be cabled to a network: not loopback, a bridge, a bridge's
    # port or another virtual device (``NOT_A_NIC``).
    ethernet: bool = True


def local_interfaces() -> list[LocalInterface]:
    """Every interface of this network namespace, with its MAC, MTU and IPv4 addresses."""
    try:
        out = subprocess.run(
            ["ip", "-j", "-d", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
        entries = json.loads(out or "[]")
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        raise EnvironmentProblem(
            f"cannot list network interfaces with 'ip -j -d addr': {exc}",
            "install iproute2 (Debian package iproute2)",
        ) from None
    return [parse_ip_addr_entry(entry) for entry in entries]


def parse_ip_addr_entry(entry: dict[str, object]) -> LocalInterface:
    mac = parse_mac(str(entry.get("address", "")))
    if mac == "00:00:00:00:00:00":
        mac = None
    addresses = []
    infos = entry.get("addr_info", [])
    for info in infos if isinstance(infos, list) else []:
        if info.get("family") == "inet":
            addresses.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}"))
    mtu = entry.get("mtu", 1500)
    linkinfo = entry.get("linkinfo")
    kind = linkinfo.get("info_kind") if isinstance(linkinfo, dict) else None
    ethernet = (
        entry.get("link_type") == "ether"
        and mac is not None
        and kind not in NOT_A_NIC
        and not entry.get("master")
    )
    return LocalInterface(
        name=str(entry.get("ifname", "")),
        mac=mac,
        mtu=mtu if isinstance(mtu, int) else 1500,
        ipv4=tuple(addresses),
        ethernet=ethernet,
    )


def add_address(name: str, address: ipaddress.IPv4Interface) -> None:
    """``ip addr add ADDRESS dev NAME``: racker's address on a PXE NIC that has none."""
    try:
        subprocess.run(
            ["ip", "addr", "add", str(address), "dev", name],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise EnvironmentProblem(
            f"cannot add {address} to the PXE interface {name}: {detail.strip()}",
            "run racker serve as root, or give the interface its address yourself",
        ) from None
