"""The rack-internal address plan (layer 1: pure).

Defaults, for a subnet of N host addresses: the first quarter is left for infrastructure
(racker itself, a gateway, switches), the second quarter goes to servers' primary NICs, the
third to BMCs, the last to the dynamic pool for unknown clients. A /24 gives nodes .64-.127,
BMCs .128-.191 and the pool .192-.254.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from racker.errors import ConfigError, Problem
from racker.model import AddressRange, NetworkPlan
from racker.rack.config import Config


def _quarter(subnet: ipaddress.IPv4Network, index: int) -> AddressRange:
    size = subnet.num_addresses // 4
    start = int(subnet.network_address) + index * size
    end = int(subnet.broadcast_address) - 1 if index == 3 else start + size - 1
    return AddressRange(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end))


# The rack-internal subnet when neither racker.yaml nor the PXE NIC gives one (a fresh
# management node: racker is that network's DHCP server, so nobody else gives its NIC one).
DEFAULT_SUBNET = ipaddress.IPv4Network("172.24.213.0/24")


def plan_addresses(
    config: Config,
    interface_addresses: Sequence[ipaddress.IPv4Interface] = (),
    source: str = "racker.yaml",
) -> NetworkPlan:
    """Combine racker.yaml with the PXE interface's own addresses into a checked plan.

    With ``network.subnet`` set, the NIC's address in that subnet is racker's (else
    ``network.server``, else the subnet's first host, which ``racker serve`` then adds to a NIC
    that has no address); a NIC whose addresses all lie in other subnets is an error naming
    both, never changed. Without it, the NIC's own subnet, else ``DEFAULT_SUBNET``.
    """
    net = config.network
    problems: list[Problem] = []
    inside = [a for a in interface_addresses if net.subnet is None or a.ip in net.subnet]
    if net.subnet is not None and interface_addresses and not inside:
        have = ", ".join(str(a) for a in interface_addresses)
        raise ConfigError(
            [
                Problem(
                    source,
                    None,
                    f"the PXE interface has {have}, outside network.subnet {net.subnet}",
                    "set network.subnet to the interface's subnet, or remove that address "
                    "(racker never changes an address it did not add)",
                )
            ]
        )
    own = inside[0] if inside else None
    subnet = net.subnet or (own.network if own else DEFAULT_SUBNET)
    server = net.server or (own.ip if own else next(subnet.hosts(), subnet.network_address))
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
