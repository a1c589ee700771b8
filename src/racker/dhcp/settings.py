"""From racker.yaml and the network plan to the DHCP core's settings (layer 1: pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from racker.dhcp.boot import BootSettings
from racker.dhcp.core import CoreSettings, DhcpCore, Segment
from racker.dhcp.leases import PersistedLease
from racker.events import Keeps
from racker.model import BootPolicy, NetworkPlan, always_pxe
from racker.rack.config import Config


def core_settings(config: Config, plan: NetworkPlan, http_port: int | None = None) -> CoreSettings:
    dhcp = config.dhcp
    boot = config.boot
    return CoreSettings(
        server=plan.server,
        local=Segment.build(plan.subnet, dhcp.pool or plan.pool, plan.gateway),
        boot=BootSettings(
            server=str(plan.server),
            http_port=config.http.port if http_port is None else http_port,
            bios_loader=boot.bios_loader,
            uefi_loader=boot.uefi_loader,
            arm64_loader=boot.arm64_loader,
        ),
        relays=tuple(Segment.build(r.subnet, r.pool, r.gateway) for r in dhcp.relays),
        dns=tuple(plan.dns),
        lease_time=dhcp.lease_time,
        pool_lease_time=dhcp.pool_lease_time,
        unknown_clients=dhcp.unknown_clients,
        cache_threshold=dhcp.cache_threshold,
    )


def build_core(
    config: Config,
    plan: NetworkPlan,
    reservations: Mapping[str, ipaddress.IPv4Address],
    *,
    leases: Iterable[PersistedLease] = (),
    http_port: int | None = None,
    policy: BootPolicy = always_pxe,
    bmc_macs: Iterable[str] = (),
    keeps: Keeps | None = None,
) -> DhcpCore:
    """The DHCP core for ``racker serve``.

    ``reservations``: MAC → address for every node primary MAC and BMC MAC (from
    ``Store.sync_allocations``); ``leases``: ``Store.leases()``; ``bmc_macs`` only labels events;
    ``keeps``: ``EventHub.keeps`` (None: every event is built).
    """
    return DhcpCore(
        core_settings(config, plan, http_port),
        reservations,
        leases,
        policy,
        bmc_macs,
        keeps=keeps,
    )
