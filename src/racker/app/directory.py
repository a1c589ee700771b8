"""NodeDirectory: who is who on the PXE network, for the servers' per-packet questions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from racker.bootstrap.machine import DISK_PHASES
from racker.model import BootAction, Node, NodeState
from racker.rack.allocation import Allocation
from racker.rack.loading import Rack
from racker.store import Store

# Provisioning states after which a node boots from its disk.
INSTALLED_STATES = DISK_PHASES


class NodeDirectory:
    """Who is who on the PXE network: inventory rows, reserved addresses, provisioning state.

    Built once from the store; ``refresh_states`` re-reads provisioning state (cheap), and
    ``overrides`` let the orchestrator force a node's boot action (e.g. --reprovision).
    """

    # A running `racker serve` sees provisioning state that `racker bootstrap` (another
    # process) writes; re-reading it at most this often keeps the DHCP hot path cheap.
    STATE_TTL = 1.0

    def __init__(
        self, rack: Rack, store: Store, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self._clock = clock
        self._states_read = 0.0
        self.overrides: dict[str, BootAction] = {}
        self.states: dict[str, NodeState] = {}
        self.lease_lookup: Callable[[str], str | None] | None = None
        self.rebind(rack, store.sync_allocations(rack.oem.inventory, rack.plan))

    def rebind(self, rack: Rack, allocations: dict[str, Allocation]) -> None:
        """Take a (re)loaded rack and its allocation table (at start and on SIGHUP)."""
        self.rack = rack
        self._by_mac = {mac: node for node in rack.oem.inventory.nodes for mac in node.macs}
        self.allocations = allocations
        self.address_of_mac = {mac: str(a.address) for mac, a in allocations.items()}
        self.mac_of_address = {addr: mac for mac, addr in self.address_of_mac.items()}
        self.refresh_states()

    def refresh_states(self) -> None:
        self.states = self.store.node_states()
        self._states_read = self._clock()

    def node(self, mac: str | None) -> Node | None:
        return self._by_mac.get(mac) if mac else None

    def knows(self, mac: str) -> bool:
        """Is ``mac`` one of the rack's machines (a node's NIC or BMC in nodes.csv)?"""
        return mac in self._by_mac

    def knows_ip(self, ip: str) -> bool:
        """Does ``ip`` belong to one of the rack's machines (by reservation or lease)?"""
        mac = self.mac_for_ip(ip)
        return mac is not None and mac in self._by_mac

    def boot_action(self, mac: str) -> BootAction:
        if mac in self.overrides:
            return self.overrides[mac]
        node = self.node(mac)
        if node is not None and node is self.rack.oem.inventory.management:
            return BootAction.DISK  # never provision the management node
        state = self.state(node.primary_mac if node else mac)
        return BootAction.DISK if state and state.state in INSTALLED_STATES else BootAction.PXE

    def state(self, mac: str) -> NodeState | None:
        """A node's provisioning state, at most ``STATE_TTL`` old (no SQLite read per packet)."""
        if self._clock() - self._states_read >= self.STATE_TTL:
            self.refresh_states()
        return self.states.get(mac)

    def address_of(self, mac: str) -> str | None:
        return self.address_of_mac.get(mac)

    def mac_for_ip(self, ip: str) -> str | None:
        mac = self.mac_of_address.get(ip)
        if mac is None and self.lease_lookup is not None:
            mac = self.lease_lookup(ip)  # pool clients: whoever holds the DHCP lease
        return mac

    def may_fetch_boot_files(self, ip: str) -> bool:
        mac = self.mac_for_ip(ip)
        return mac is None or self.boot_action(mac) is BootAction.PXE

    def nodes_json(self) -> list[dict[str, Any]]:
        rows = []
        states = self.store.node_states()
        for node in self.rack.oem.inventory.nodes:
            state = states.get(node.primary_mac)
            rows.append(
                {
                    "hostname": node.hostname,
                    "node_type": node.node_type,
                    "primary_mac": node.primary_mac,
                    "bmc_mac": node.bmc_mac,
                    "secondary_mac": node.secondary_mac,
                    "address": self.address_of(node.primary_mac),
                    "bmc_address": self.address_of(node.bmc_mac),
                    "management": node is self.rack.oem.inventory.management,
                    "state": state.state if state else "unknown",
                    "since": state.since if state else None,
                    "role": (state.data or {}).get("role") if state else None,
                }
            )
        return rows

    # -- the rack page (racker.web.page): fixed columns, no store access ----------------------

    def page_rows(self) -> list[dict[str, Any]]:
        """Each inventory node's fixed columns for the rack page: names, addresses, its BMC's
        address and protocol. Built once per (re)load; the page asks every half second."""
        cached: tuple[object, object, list[dict[str, Any]]] | None = getattr(
            self, "_page_rows", None
        )
        if cached is None or cached[0] is not self.rack or cached[1] is not self.allocations:
            cached = (self.rack, self.allocations, _page_rows(self.rack, self.address_of_mac))
            self._page_rows = cached
        return cached[2]


def _page_rows(rack: Rack, address_of: dict[str, str]) -> list[dict[str, Any]]:
    from racker.errors import ConfigError
    from racker.power.base import IPMI_PORT, BmcCredentials, BmcTarget
    from racker.power.targets import BmcAddress, static_addresses

    inventory, config = rack.oem.inventory, rack.config
    try:
        static = static_addresses(inventory, config.bmc.addresses)
    except ConfigError:  # racker serve started, so the power commands report it; show none
        static = {}
    rows = []
    for node in inventory.nodes:
        bmc = static.get(node.primary_mac)
        if bmc is None:
            allocated = address_of.get(node.bmc_mac)
            bmc = BmcAddress(allocated, IPMI_PORT, None) if allocated else None
        # BmcTarget names the BMC as the auto driver remembers it (host[:port] or its URL).
        target = BmcTarget(node.hostname, bmc.host, BmcCredentials("", ""), bmc.port,
                           scheme=bmc.scheme) if bmc else None  # fmt: skip
        rows.append(
            {
                "hostname": node.hostname,
                "node_type": node.node_type,
                "primary_mac": node.primary_mac,
                "bmc_mac": node.bmc_mac,
                "secondary_mac": node.secondary_mac,
                "address": address_of.get(node.primary_mac),
                "bmc_address": target.address if target else None,
                "bmc_key": target.address if target else None,
                "bmc_protocol": "redfish" if bmc and bmc.scheme else config.bmc.driver,
                "management": node is inventory.management,
            }
        )
    return rows
