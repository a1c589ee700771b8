"""The DHCP settings, and how racker.yaml, the network plan and the allocation table become
them (layer 1: pure).

``settings_from_config`` is the one way from racker's configuration to a ``DhcpSettings``:
``racker serve`` builds its DHCP core from it at start (``core.build_core``) and hands a new
one to the running server on SIGHUP (``DhcpServer.reload``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from racker.dhcp.boot import BootSettings
from racker.model import AddressKind

if TYPE_CHECKING:
    from racker.model import AddressRange, NetworkPlan, Node
    from racker.rack.allocation import Allocation
    from racker.rack.config import Config


@dataclass(frozen=True, slots=True)
class Segment:
    """A subnet racker serves: the PXE interface's own, or one behind a relay."""

    network: int
    mask: int
    pool: tuple[int, int] | None
    router: bytes | None
    mask_bytes: bytes
    broadcast_bytes: bytes

    @classmethod
    def build(
        cls,
        subnet: ipaddress.IPv4Network,
        pool: AddressRange | None = None,
        gateway: ipaddress.IPv4Address | None = None,
    ) -> Segment:
        return cls(
            network=int(subnet.network_address),
            mask=int(subnet.netmask),
            pool=(int(pool.first), int(pool.last)) if pool else None,
            router=gateway.packed if gateway else None,
            mask_bytes=subnet.netmask.packed,
            broadcast_bytes=subnet.broadcast_address.packed,
        )

    def contains(self, address: int) -> bool:
        return address & self.mask == self.network


@dataclass(frozen=True, slots=True)
class CoreSettings:
    server: ipaddress.IPv4Address  # our address on the PXE link: option 54 and siaddr
    local: Segment
    boot: BootSettings
    relays: tuple[Segment, ...] = ()
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    lease_time: int = 86400
    pool_lease_time: int = 600
    unknown_clients: str = "ignore"  # or "pool"
    offer_hold: float = 60.0  # an offered address is kept for the client this long
    decline_quarantine: float = 600.0  # RFC 2131 §3.1 step 5: a declined address rests
    cache_threshold: float = 0.0  # see memo.LeaseCaching (dhcp.cache_threshold: 0.25)


@dataclass(frozen=True)
class DhcpSettings:
    """All a DHCP core is built from but its leases, its boot policy and its event budget."""

    core: CoreSettings
    reservations: Mapping[str, ipaddress.IPv4Address]  # MAC -> address: node NICs and BMCs
    bmc_macs: frozenset[str] = frozenset()  # only labels events ("bmc")
    # The management node's own NICs: racker is this network's DHCP server and never answers
    # the machine it runs on (its PXE NIC has racker's static address).
    ignored: frozenset[str] = frozenset()


def settings_from_config(
    config: Config,
    plan: NetworkPlan,
    allocations: Mapping[str, Allocation],
    http_port: int | None = None,
    nodes: Iterable[Node] = (),
    management: Node | None = None,
) -> DhcpSettings:
    """The DHCP settings for ``racker serve``: ``allocations`` is the allocation table
    (``Store.sync_allocations``), whose every MAC gets its reserved address, but those of
    ``management`` (the node racker runs on), which are never answered; ``nodes`` the
    inventory's, whose types ``boot.uefi_http`` may name."""
    nodes = list(nodes)
    ignored = frozenset(management.macs) if management is not None else frozenset()
    rows = [a for a in allocations.values() if a.mac not in ignored]
    return DhcpSettings(
        core_settings(config, plan, http_port, nodes),
        {a.mac: a.address for a in rows},
        frozenset(a.mac for a in rows if a.kind is AddressKind.BMC),
        ignored,
    )


def core_settings(
    config: Config, plan: NetworkPlan, http_port: int | None = None, nodes: Iterable[Node] = ()
) -> CoreSettings:
    dhcp = config.dhcp
    boot = config.boot
    http_types = boot.uefi_http if isinstance(boot.uefi_http, list) else []
    return CoreSettings(
        server=plan.server,
        local=Segment.build(plan.subnet, dhcp.pool or plan.pool, plan.gateway),
        boot=BootSettings(
            server=str(plan.server),
            http_port=config.http.port if http_port is None else http_port,
            bios_loader=boot.bios_loader,
            uefi_loader=boot.uefi_loader,
            arm64_loader=boot.arm64_loader,
            uefi_http=boot.uefi_http is True,
            uefi_http_macs=frozenset(
                mac
                for node in nodes
                if node.node_type in http_types
                for mac in (node.primary_mac, node.secondary_mac)
                if mac
            ),
        ),
        relays=tuple(Segment.build(r.subnet, r.pool, r.gateway) for r in dhcp.relays),
        dns=tuple(plan.dns),
        lease_time=dhcp.lease_time,
        pool_lease_time=dhcp.pool_lease_time,
        unknown_clients=dhcp.unknown_clients,
        cache_threshold=dhcp.cache_threshold,
    )
