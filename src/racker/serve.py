"""The boot stack: DHCP, TFTP and HTTP on the PXE interface, in one asyncio process (layer 5).

``BootStack`` is built from a loaded ``Rack`` and the store; it is what ``racker serve`` runs
until a signal, and what ``racker bootstrap`` runs in-process. Every event of every server goes
through one ``EventHub``: logged, appended to the store's event log in batches, and handed to
subscribers (the orchestrator). Servers only ever see the hub's ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from racker.allocation import Allocation
from racker.app import Rack
from racker.bootstrap.machine import DISK_PHASES
from racker.dhcp.events import log_line as dhcp_log_line
from racker.events import DhcpEvent, DiscoveryEvent, Event, EventLogOverflow, Publish
from racker.model import AddressKind, BootAction, Node
from racker.profiles import RenderContext
from racker.render import render_context
from racker.store import NodeState, Store

log = logging.getLogger("racker.serve")
_dhcp_log = logging.getLogger("racker.dhcp")
T = TypeVar("T")

# Provisioning states after which a node boots from its disk.
INSTALLED_STATES = DISK_PHASES


class EventHub:
    """Fan-out for events: log, persist (write-behind, batched), and subscribers.

    Subscribers see every event. The store's event log gets every event of the rack's own
    machines (``known``: a MAC in nodes.csv) and of racker itself, but the boot servers' events
    about anyone else (pool clients, strangers, unidentified HTTP peers) only up to
    ``STRANGER_EVENTS_PER_SECOND``: a persisted event costs ~10-15 us of JSON and SQLite, a
    DHCP exchange makes four, and a flood of unknown clients must not take the boot server's CPU
    or the disk. The same budget bounds the DHCP log lines (``-v``) of those clients. What is
    left out is counted, stored as one ``EventLogOverflow`` per flush and told in a warning at
    most once a minute.
    """

    # The event log keeps this many of the newest events (~100 MB of SQLite at most); pruned
    # once every PRUNE_EVERY flushes, so it costs nothing per packet.
    KEEP_EVENTS = 200_000
    PRUNE_EVERY = 300
    STRANGER_EVENTS_PER_SECOND = 1000
    BUDGETED_SOURCES = frozenset({"dhcp", "tftp", "http"})
    OVERFLOW_WARNING_INTERVAL = 60.0

    def __init__(
        self,
        store: Store | None,
        flush_interval: float = 0.2,
        known: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.subscribers: list[Publish] = []
        self.known = known  # is this MAC one of the rack's machines? (None: nobody is)
        self._pending: list[Event] = []
        self._flush_interval = flush_interval
        self._flushes = 0
        self._task: asyncio.Task[None] | None = None
        self._per_flush = max(1, int(self.STRANGER_EVENTS_PER_SECOND * flush_interval))
        self._budget = self._per_flush
        self._left_out = 0  # strangers' events not stored since the last flush
        self._left_out_since_warning = 0
        self._clock = clock
        self._warned = clock() - self.OVERFLOW_WARNING_INTERVAL
        self._window_start = time.time()

    def publish(self, event: Event) -> None:
        if self._within_budget(event):  # else neither stored nor logged: a line costs like a row
            _log_event(event)
            self._pending.append(event)
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not break a server's hot path
                log.exception("event subscriber failed on %s", event.kind)

    def keeps(self, mac: str, count: int) -> bool:
        """Would ``count`` boot-server events about ``mac`` be stored, logged or delivered?

        If not (a client outside nodes.csv, the budget spent, no subscriber), they are counted
        as left out here, so a hot path (DHCP: four events per exchange) need not build them.
        """
        known = self.known
        if self.subscribers or self._budget > 0 or (known is not None and known(mac)):
            return True
        self._left_out += count
        return False

    def _within_budget(self, event: Event) -> bool:
        mac, known = event.mac, self.known
        if event.source not in self.BUDGETED_SOURCES or (mac and known and known(mac)):
            return True
        if self._budget > 0:
            self._budget -= 1
            return True
        self._left_out += 1
        return False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            self.flush()

    def flush(self) -> None:
        self._budget = self._per_flush
        now = time.time()
        if self._left_out:
            self._pending.append(
                EventLogOverflow(
                    "event-log-overflow",
                    None,
                    now,
                    left_out=self._left_out,
                    seconds=round(now - self._window_start, 3),
                    limit=self.STRANGER_EVENTS_PER_SECOND,
                )
            )
            self._left_out_since_warning += self._left_out
            self._left_out = 0
        self._window_start = now
        if self._left_out_since_warning and (
            self._clock() - self._warned >= self.OVERFLOW_WARNING_INTERVAL
        ):
            log.warning(
                "event log: %d events of clients outside nodes.csv not stored or logged (more"
                " than %d/s); the rack's own machines' events always are",
                self._left_out_since_warning,
                self.STRANGER_EVENTS_PER_SECOND,
            )
            self._warned = self._clock()
            self._left_out_since_warning = 0
        if not self._pending or self.store is None:
            self._pending.clear()
            return
        batch, self._pending = self._pending, []
        try:
            self.store.append_events(batch)
            self._flushes += 1
            if self._flushes % self.PRUNE_EVERY == 0:
                self.store.prune_events(self.KEEP_EVENTS)
        except Exception as exc:
            log.warning("could not write %d events to the store: %s", len(batch), exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()


def _log_event(event: Event) -> None:
    # TFTP and HTTP log their transfers and requests themselves; DHCP, whose hot path does
    # not log, is told here from its events (at INFO: `racker -v serve`). DEBUG: every event.
    if isinstance(event, DhcpEvent | DiscoveryEvent) and _dhcp_log.isEnabledFor(logging.INFO):
        line = dhcp_log_line(event)
        if line is not None:
            _dhcp_log.info("%s", line)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("event %s", event.to_dict())


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


class BootStack:
    """DHCP + TFTP + HTTP for one rack, started and stopped together."""

    def __init__(self, rack: Rack, store: Store, hub: EventHub | None = None) -> None:
        self.rack = rack
        self.store = store
        self.hub = hub or EventHub(store)
        self.directory = NodeDirectory(rack, store)
        self.hub.known = self.directory.knows
        self.servers: list[Any] = []
        self.http_port = rack.config.http.port
        self.started_rack = rack  # issue 9: what the bound sockets were built from (reload)

    @property
    def server_ip(self) -> str:
        return str(self.rack.plan.server)

    async def start(self) -> None:
        self.hub.start()
        try:
            builds = (self._build_dhcp, self._build_ra, self._build_tftp, self._build_http)
            for build in builds:
                server = build()
                if server is None:
                    continue
                await server.start()
                self.servers.append(server)
        except BaseException:
            await self.close()
            raise
        log.info(
            "boot stack up on %s (%s): %d nodes, %s",
            self.rack.interface.name,
            self.server_ip,
            len(self.rack.oem.inventory.provisionable),
            ", ".join(type(s).__name__ for s in self.servers),
        )

    async def close(self) -> None:
        for server in reversed(self.servers):
            try:
                await server.close()
            except Exception:
                log.exception("closing %s failed", type(server).__name__)
        self.servers.clear()
        await self.hub.close()

    # -- the servers ----------------------------------------------------------------------

    def _build_ra(self) -> Any:
        # issue 8: answer IPv6 router solicitations so iPXE does not stall ~13 s (racker.ra)
        if not self.rack.config.dhcp.router_advertisements:
            return None
        from racker.ra import RouterAdvertiser

        return RouterAdvertiser(self.rack.interface.name, self.rack.interface.mac)

    def _build_dhcp(self) -> Any:
        from racker.dhcp.server import create_server

        allocations = self.directory.allocations.values()
        server = create_server(
            self.rack.config,
            self.rack.plan,
            {a.mac: a.address for a in allocations},
            interface=self.rack.interface.name,
            store=self.store,
            publish=self.hub.publish,
            keeps=self.hub.keeps,
            http_port=self.http_port,
            policy=self.directory.boot_action,
            bmc_macs={a.mac for a in allocations if a.kind is AddressKind.BMC},
        )
        leases = server.core.leases

        def lease_holder(ip: str) -> str | None:
            entry = leases.at(int(ipaddress.IPv4Address(ip)))
            return entry.mac if entry is not None else None

        self.directory.lease_lookup = lease_holder
        return server

    def _build_tftp(self) -> Any:
        from racker.tftp.server import TftpServer

        config = self.rack.config
        # The operator's root first, so it can override a packaged loader.
        roots = [config.tftp.ipxe_dir]
        if config.tftp.root is not None:
            roots.insert(0, config.tftp.root)
        mtu = config.network.mtu or self.rack.interface.mtu
        return TftpServer(
            self.server_ip,
            roots,
            config.tftp,
            mtu,
            self.hub.publish,
            policy=self.directory.may_fetch_boot_files,
            mac_for=self.directory.mac_for_ip,
            packaged=[config.tftp.ipxe_dir],
        )

    def _build_http(self) -> Any:
        from racker.profiles import NodeFacts, load_catalog, settings_from_config
        from racker.web.keyfile import load_or_create_key
        from racker.web.server import BootHttpServer

        config = self.rack.config
        settings = settings_from_config(config, self.rack.plan, self._flatcar_version())
        catalog = load_catalog(config.http.profiles_dir, settings)
        server_url = f"http://{self.server_ip}:{self.http_port}"
        directory = self.directory
        self.render_settings = settings  # issue 9: replaced by reload_stack on SIGHUP

        def context_for(facts: NodeFacts) -> RenderContext:
            node = directory.node(facts.mac)
            mac = node.primary_mac if node else facts.mac
            return render_context(
                node=node,
                management=node is not None and node is self.rack.oem.inventory.management,
                state=directory.state(mac) if mac else None,
                installed=mac is not None and directory.boot_action(mac) is BootAction.DISK,
                address=directory.address_of(mac) if mac else None,
                server_url=server_url,
                settings=self.render_settings,
            )

        return BootHttpServer(
            self.server_ip,
            self.http_port,
            catalog,
            context_for,
            key=load_or_create_key(self.rack.state_dir / "http.key"),
            assets_dir=self._assets_dir(),
            publish=self.hub.publish,
            node_states=directory.nodes_json,
            address_of=directory.address_of,
            bind_to_lease=config.http.bind_to_lease,
            inventory=lambda: [node.primary_mac for node in directory.rack.oem.inventory.nodes],
        )

    def _assets_dir(self) -> Path:
        return self.rack.config.http.assets_dir or self.rack.state_dir / "assets"

    def _flatcar_version(self) -> str | None:
        from racker.assets import current_version

        return current_version(self._assets_dir(), self.rack.config.install.channel)


def run_event_loop(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """Run ``main`` to the end on asyncio's own loop, or on uvloop if asked and installed.

    The one place racker chooses its event loop (``racker serve``, ``racker bootstrap``).
    ``loop`` (default: ``$RACKER_EVENT_LOOP``, else ``"asyncio"``) ``"uvloop"`` opts in: the
    boot stack works on it (tests/integration/web/test_serve_event_loop.py) and /ipxe answers
    ~10 % more requests per second, but aiohttp cannot ``sendfile`` on uvloop's transports,
    so every asset byte is read and written through Python (4-5x the server CPU per MiB,
    measured in issue 5), and the p99 goal was not met on either loop; see docs/benchmarks.md.
    """
    choice = loop or os.environ.get("RACKER_EVENT_LOOP", "asyncio")
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    name = "asyncio"
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            name = "asyncio (uvloop is not installed)"
        else:
            factory, name = uvloop.new_event_loop, "uvloop"
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def serve_until_signal(
    stack: BootStack,
    ready: Callable[[], None] | None = None,
    load: Callable[[], Rack] | None = None,
) -> None:
    """Run the boot stack until SIGINT or SIGTERM, then close it cleanly (leases flushed).

    issue 9: once every server is bound, tell systemd (sd_notify READY=1, a no-op outside a
    Type=notify unit); on SIGHUP, re-read the files through ``load`` and apply them
    (``reload_from_files``)."""
    from racker.release.systemd import notify

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_from_files, stack, load)
    started = time.monotonic()
    await stack.start()
    notify("READY=1")
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        log.info("stopping after %.0f s", time.monotonic() - started)
        notify("STOPPING=1")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await stack.close()


# --- reload on SIGHUP (issue 9) -------------------------------------------------------------
# What a reload applies in place: nodes.csv and the OEM files (inventory, reservations, BMC
# MACs), the DHCP settings racker.yaml gives (lease times, pool, relays, unknown clients) and
# the profiles/templates with their render settings. Leases are flushed to the store and read
# back into the new DHCP core; TFTP transfers and HTTP requests in flight are untouched.
# What needs a restart (sockets are bound from it): see RESTART_ONLY.

RESTART_ONLY = (
    ("the PXE interface", lambda r: r.interface.name),
    ("racker's address (network.server/subnet)", lambda r: (r.plan.server, r.plan.subnet)),
    ("state_dir", lambda r: r.state_dir),
    ("tftp.*", lambda r: r.config.tftp),
    ("http.port, http.assets_dir, http.bind_to_lease",
     lambda r: (r.config.http.port, r.config.http.assets_dir, r.config.http.bind_to_lease)),
    ("dhcp.router_advertisements", lambda r: r.config.dhcp.router_advertisements),
)  # fmt: skip


def reload_from_files(stack: BootStack, load: Callable[[], Rack]) -> bool:
    """SIGHUP: re-read everything; invalid files keep the running configuration (logged)."""
    from racker.errors import ProblemsError, RackerError

    try:
        rack = load()
        pending = reload_stack(stack, rack)
    except RackerError as err:
        problems = err.problems if isinstance(err, ProblemsError) else []
        log.error("reload failed, keeping the running configuration: %s", err.message)
        for problem in problems:
            log.error("  %s", problem)
        return False
    for what in pending:
        log.warning("reload: %s changed; it takes effect after a restart", what)
    log.info("reloaded: %d nodes", len(rack.oem.inventory.provisionable))
    return True


def reload_stack(stack: BootStack, rack: Rack) -> list[str]:
    """Apply ``rack`` to the running stack; return what changed but needs a restart.
    Everything that can fail (profiles, allocations) is built before anything is swapped."""
    from racker.dhcp.server import DhcpServer
    from racker.dhcp.settings import build_core
    from racker.profiles import load_catalog, settings_from_config
    from racker.web.server import SERVICE, BootHttpServer

    pending = [n for n, key in RESTART_ONLY if key(rack) != key(stack.started_rack)]
    plan = stack.started_rack.plan  # the bound address stays until a restart
    settings = settings_from_config(rack.config, plan, stack._flatcar_version())
    catalog = load_catalog(rack.config.http.profiles_dir, settings)
    allocations = stack.store.sync_allocations(rack.oem.inventory, plan)
    directory = stack.directory
    for server in stack.servers:
        if isinstance(server, DhcpServer):
            server.flush()  # the new core reads every lease back from the store
            core = build_core(
                rack.config,
                plan,
                {a.mac: a.address for a in allocations.values()},
                leases=stack.store.leases(),
                http_port=stack.http_port,
                policy=directory.boot_action,
                bmc_macs={a.mac for a in allocations.values() if a.kind is AddressKind.BMC},
                keeps=stack.hub.keeps,
            )
            server.core = core
            directory.lease_lookup = _lease_holder(core.leases)
        elif isinstance(server, BootHttpServer):
            service = server.app[SERVICE]
            service.catalog = catalog
            service.ipxe_cache.clear()
            service.ipxe_ahead.clear()
            server.render_again()  # once the directory below has the new inventory
            stack.render_settings = settings
    stack.rack = rack
    directory.rebind(rack, allocations)
    return pending


def _lease_holder(leases: Any) -> Callable[[str], str | None]:
    def holder(ip: str) -> str | None:
        entry = leases.at(int(ipaddress.IPv4Address(ip)))
        return entry.mac if entry is not None else None

    return holder


# --- end of reload on SIGHUP (issue 9) ---
