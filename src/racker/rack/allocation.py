"""Stable address allocation (layer 1: pure).

Every primary MAC and BMC MAC in nodes.csv gets one address from its range, recorded in the
state store. A MAC keeps its address for as long as the address stays inside its range, so
adding, removing or reordering rows never moves anybody else; a removed row's address stays
reserved for it (the row may come back) until the range runs out, and only then is the
longest-unused one reused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from racker.errors import RackerError
from racker.model import AddressKind, Inventory, NetworkPlan


@dataclass(frozen=True)
class Allocation:
    mac: str
    kind: AddressKind
    address: ipaddress.IPv4Address
    last_wanted: float  # when the MAC was last in nodes.csv (wall clock)


class RangeExhausted(RackerError):
    exit_code = 3


def wanted_macs(inventory: Inventory) -> list[tuple[str, AddressKind]]:
    """The MACs that need a reserved address, in file order (management node included: its
    BMC is on the internal network too)."""
    wanted: list[tuple[str, AddressKind]] = []
    for node in inventory.nodes:
        wanted.append((node.primary_mac, AddressKind.NODE))
        wanted.append((node.bmc_mac, AddressKind.BMC))
    return wanted


def allocate(
    existing: Mapping[str, Allocation],
    wanted: Iterable[tuple[str, AddressKind]],
    plan: NetworkPlan,
    now: float,
) -> dict[str, Allocation]:
    """Return the complete new allocation table (existing entries kept where possible)."""
    table = dict(existing)
    wanted = list(wanted)
    wanted_set = {mac for mac, _ in wanted}
    for mac, kind in wanted:
        current = table.get(mac)
        if current is not None and current.kind is kind and current.address in plan.range_for(kind):
            table[mac] = Allocation(mac, kind, current.address, now)
            continue
        if current is not None:
            del table[mac]
        address = _free_address(table, wanted_set, kind, plan, mac)
        table[mac] = Allocation(mac, kind, address, now)
    return table


def _free_address(
    table: dict[str, Allocation],
    wanted_set: set[str],
    kind: AddressKind,
    plan: NetworkPlan,
    mac: str,
) -> ipaddress.IPv4Address:
    taken = {a.address for a in table.values()}
    reserved = {plan.server}
    if plan.gateway is not None:
        reserved.add(plan.gateway)
    for address in plan.range_for(kind):
        if address not in taken and address not in reserved:
            return address
    # The range is full: reuse the address of the MAC that left nodes.csv longest ago.
    stale = sorted(
        (a for a in table.values() if a.mac not in wanted_set and a.kind is kind),
        key=lambda a: a.last_wanted,
    )
    if stale:
        del table[stale[0].mac]
        return stale[0].address
    rng = plan.range_for(kind)
    raise RangeExhausted(
        f"no free {kind.value} address for {mac}: range {rng} ({len(rng)} addresses) is full",
        f"widen network.{kind.value}s in racker.yaml",
    )
