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


@dataclass(frozen=True)
class LocalInterface:
    name: str
    mac: str | None
    mtu: int
    ipv4: tuple[ipaddress.IPv4Interface, ...]


def local_interfaces() -> list[LocalInterface]:
    """Every interface of this network namespace, with its MAC, MTU and IPv4 addresses."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
        entries = json.loads(out or "[]")
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        raise EnvironmentProblem(
            f"cannot list network interfaces with 'ip -j addr': {exc}",
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
    return LocalInterface(
        name=str(entry.get("ifname", "")),
        mac=mac,
        mtu=mtu if isinstance(mtu, int) else 1500,
        ipv4=tuple(addresses),
    )
