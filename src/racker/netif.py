"""The management node's own network interfaces (layer 2: reads /sys and asks iproute2)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from racker.errors import EnvironmentProblem
from racker.model import parse_mac

SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class LocalInterface:
    name: str
    mac: str | None
    mtu: int
    ipv4: tuple[ipaddress.IPv4Interface, ...]


def local_interfaces() -> list[LocalInterface]:
    """Every interface of this network namespace, with its MAC, MTU and IPv4 addresses."""
    addresses: dict[str, list[ipaddress.IPv4Interface]] = {}
    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
        for entry in json.loads(out or "[]"):
            for info in entry.get("addr_info", []):
                if info.get("family") == "inet":
                    addresses.setdefault(entry["ifname"], []).append(
                        ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
                    )
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        raise EnvironmentProblem(
            f"cannot list IPv4 addresses with 'ip -j addr': {exc}",
            "install iproute2 (Debian package iproute2)",
        ) from None
    interfaces = []
    for path in sorted(SYS_NET.iterdir()) if SYS_NET.exists() else []:
        name = path.name
        mac = parse_mac(_read(path / "address"))
        if mac == "00:00:00:00:00:00":
            mac = None
        try:
            mtu = int(_read(path / "mtu") or 1500)
        except ValueError:
            mtu = 1500
        interfaces.append(LocalInterface(name, mac, mtu, tuple(addresses.get(name, []))))
    return interfaces


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
