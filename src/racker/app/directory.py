"""NodeDirectory: who is who on the PXE network, for the servers' per-packet questions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from racker.bootstrap.machine import DISK_PHASES
from racker.model import BootAction, Node, NodeState
from racker.rack.allocation import Allocation
from racker.rack.loading import Rack
from racker.store import Store
from racker.store_writer import run_on_connection

log = logging.getLogger("racker.serve")

# Provisioning states after which a node boots from its disk.
INSTALLED_STATES = DISK_PHASES


class NodeDirectory:
    """Who is who on the PXE network: inventory rows, reserved addresses, provisioning state.

    Built once from the store; provisioning state is re-read at most every ``STATE_TTL``: on
    a thread with a connection of its own when an event loop runs (the answer meanwhile is the
    state read before), else on the caller's thread. ``overrides`` let the orchestrator force a
    node's boot action (e.g. --reprovision).
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
        self._reading: asyncio.Task[None] | None = None  # a read of the states in a thread
        # At start, before any server answers: on the caller's thread.
        self.rebind(rack, store.sync_allocations(rack.oem.inventory, rack.plan))

    def rebind(
        self,
        rack: Rack,
        allocations: dict[str, Allocation],
        states: dict[str, NodeState] | None = None,
    ) -> None:
        """Take a (re)loaded rack, its allocation table and the node states read with it (at
        start, where ``None`` reads them now, and on SIGHUP)."""
        self.rack = rack
        self._by_mac = {mac: node for node in rack.oem.inventory.nodes for mac in node.macs}
        self.allocations = allocations
        self.address_of_mac = {mac: str(a.address) for mac, a in allocations.items()}
        self.mac_of_address = {addr: mac for mac, addr in self.address_of_mac.items()}
        if states is None:
            self.refresh_states()
        else:
            self.states, self._states_read = states, self._clock()

    def refresh_states(self) -> None:
        """Read the node states now, on the caller's thread (no event loop runs there)."""
        self.states = self.store.node_states()
        self._states_read = self._clock()

    async def read_states(self) -> dict[str, NodeState]:
        """The node states as stored, read on a thread (SIGHUP's reload)."""
        return await asyncio.to_thread(run_on_connection, self.store.path, _node_states)

    def _refresh_if_stale(self) -> None:
        if self._clock() - self._states_read < self.STATE_TTL or self._reading is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh_states()  # no loop to block (tests, racker preview)
            return
        self._reading = loop.create_task(self._refresh_in_thread())

    async def _refresh_in_thread(self) -> None:
        try:
            states = await self.read_states()
        except Exception as exc:  # a locked or unreadable store: keep the states we have
            log.warning("node states not re-read from the store: %s", exc)
            self._states_read = self._clock()  # try again after STATE_TTL, not per packet
        else:
            self.states, self._states_read = states, self._clock()
        finally:
            self._reading = None

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
        """A node's provisioning state, about ``STATE_TTL`` old at most (no SQLite read per
        packet, and none on the event loop's thread)."""
        self._refresh_if_stale()
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
        """/api/v1/nodes: the inventory with each node's state (as ``state`` has it)."""
        rows = []
        self._refresh_if_stale()
        states = self.states
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


def _node_states(store: Store) -> dict[str, NodeState]:
    return store.node_states()


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
