"""The rack-internal address plan (layer 1: pure).

Defaults, for a subnet of N host addresses: the first quarter is left for infrastructure
(racker itself, a gateway, switches), the second quarter goes to servers' primary NICs, the
third to BMCs, the last to the dynamic pool for unknown clients. A /24 gives nodes .64-.127,
BMCs .128-.191 and the pool .192-.254.
"""

from __future__ import annotations

import ipaddress

from racker.errors import ConfigError, Problem
from racker.model import AddressRange, NetworkPlan
from racker.rack.config import Config


def _quarter(subnet: ipaddress.IPv4Network, index: int) -> AddressRange:
    size = subnet.num_addresses // 4
    start = int(subnet.network_address) + index * size
    end = int(subnet.broadcast_address) - 1 if index == 3 else start + size - 1
    return AddressRange(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end))


def plan_addresses(
    config: Config, interface_address: ipaddress.IPv4Interface | None, source: str = "racker.yaml"
) -> NetworkPlan:
    """Combine racker.yaml with the PXE interface's own address into a checked plan."""
    net = config.network
    problems: list[Problem] = []
    subnet = net.subnet or (interface_address.network if interface_address else None)
    server = net.server or (interface_address.ip if interface_address else None)
    if subnet is None or server is None:
        raise ConfigError(
            [
                Problem(
                    source,
                    None,
                    "network.subnet/server are not set and the PXE interface has no IPv4 address",
                    "give the PXE interface an address, or set network.subnet and network.server",
                )
            ]
        )
    if subnet.prefixlen > 29:
        problems.append(
            Problem(source, None, f"network.subnet {subnet} is too small for a rack", "use a /24")
        )
        raise ConfigError(problems)
    nodes = net.nodes or _quarter(subnet, 1)
    bmcs = net.bmcs or _quarter(subnet, 2)
    pool = config.dhcp.pool or _quarter(subnet, 3)
    if server not in subnet:
        problems.append(Problem(source, None, f"network.server {server} is not in {subnet}"))
    named = {"network.nodes": nodes, "network.bmcs": bmcs, "dhcp.pool": pool}
    for key, rng in named.items():
        if rng.first not in subnet or rng.last not in subnet:
            problems.append(Problem(source, None, f"{key} {rng} is not inside {subnet}"))
        if server in rng:
            problems.append(
                Problem(
                    source,
                    None,
                    f"{key} {rng} contains racker's own address {server}",
                    "move the range or network.server",
                )
            )
    keys = list(named)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if named[a].overlaps(named[b]):
                problems.append(
                    Problem(
                        source, None, f"{a} {named[a]} overlaps {b} {named[b]}", "separate them"
                    )
                )
    if problems:
        raise ConfigError(problems)
    return NetworkPlan(
        subnet=subnet,
        server=server,
        nodes=nodes,
        bmcs=bmcs,
        pool=pool,
        gateway=net.gateway,
        dns=tuple(net.dns),
    )
