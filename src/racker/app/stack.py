"""The boot stack: DHCP, TFTP and HTTP on the PXE interface, in one asyncio process.

``BootStack`` is built from a loaded ``Rack`` and the store; it is what ``racker serve`` runs
until a signal, and what ``racker bootstrap`` runs in-process. Every event of every server goes
through one ``EventHub``: logged, appended to the store's event log in batches, and handed to
subscribers (the orchestrator). Servers only ever see the hub's ``publish``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from racker.app.directory import NodeDirectory
from racker.app.hub import EventHub
from racker.app.preview import render_context
from racker.model import BootAction
from racker.profiles import RenderContext
from racker.rack.loading import Rack
from racker.store import Store
from racker.store_writer import StoreWriter

if TYPE_CHECKING:  # imported where they are built, so importing this module loads no aiohttp
    from collections.abc import Callable

    from racker.dhcp.rogue_watch import RogueWatcher
    from racker.dhcp.server import DhcpServer
    from racker.ra.server import RouterAdvertiser
    from racker.tftp.server import TftpServer
    from racker.web.page.feed import RackFeed
    from racker.web.server import BootHttpServer

log = logging.getLogger("racker.serve")

# Tests only: every commit of the store's writer takes this many seconds more (a slow disk), to
# show that nothing but the ACKs waiting for those commits is slowed.
COMMIT_DELAY_ENV = "RACKER_TEST_COMMIT_DELAY"


class Server(Protocol):
    """What the stack needs of each of its servers."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class BootStack:
    """DHCP + TFTP + HTTP for one rack, started and stopped together."""

    def __init__(self, rack: Rack, store: Store, hub: EventHub | None = None) -> None:
        self.rack = rack
        self.store = store
        self.hub = hub or EventHub(store)
        self.directory = NodeDirectory(rack, store)
        self.hub.known = self.directory.knows
        self.servers: list[Server] = []
        self.http_port = rack.config.http.port
        self.started_rack = rack  # what the bound sockets were built from (reload)
        self.writer: StoreWriter | None = None  # the store's writes, off the loop (start)

    @property
    def server_ip(self) -> str:
        return str(self.rack.plan.server)

    async def start(self) -> None:
        self.writer = StoreWriter(
            self.store.path,
            "FULL" if self.rack.config.dhcp.lease_sync else "NORMAL",
            commit_delay=float(os.environ.get(COMMIT_DELAY_ENV) or 0),
        )
        self.writer.start()
        if self.hub.store is self.store:
            self.hub.writer = self.writer
        self.hub.start()
        try:
            builds = (
                self._build_dhcp,
                self._build_rogue_watch,
                self._build_ra,
                self._build_tftp,
                self._build_http,
            )
            for build in builds:
                server = build()
                if server is None:
                    continue
                await server.start()
                self.servers.append(server)
        except BaseException:
            await self.close()
            raise
        self._watch_counters()
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
        if self.writer is not None:  # every write submitted is done before this returns
            self.hub.writer = None
            self.writer.close()
            self.writer = None

    def _watch_counters(self) -> None:
        """The DHCP and TFTP servers' counts of what they dropped or refused, on /metrics."""
        from racker.dhcp.server import DhcpServer
        from racker.tftp.server import TftpServer
        from racker.web.server import BootHttpServer

        http = next((s for s in self.servers if isinstance(s, BootHttpServer)), None)
        if http is None:
            return
        watch = http.metrics.watch
        dhcp = next((s for s in self.servers if isinstance(s, DhcpServer)), None)
        if dhcp is not None:
            watch(
                "racker_dhcp_dropped",
                "DHCP datagrams dropped: malformed, a full send queue, replies of a failed commit",
                lambda: dhcp.dropped,
            )
            watch(
                "racker_dhcp_log_lines_suppressed",
                "DHCP warnings left out of the log by its budget (counted, not lost)",
                lambda: dhcp.log_budget.suppressed,
            )
        self._watch_rogues(watch)
        tftp = next((s for s in self.servers if isinstance(s, TftpServer)), None)
        if tftp is not None:
            watch(
                "racker_tftp_dropped",
                "TFTP datagrams to port 69 dropped: malformed or not a request",
                lambda: tftp.dropped,
            )
            watch(
                "racker_tftp_busy_refusals",
                "TFTP requests refused because the transfer caps were reached",
                lambda: tftp.busy_refusals,
            )
            watch("racker_tftp_transfers", "TFTP transfers running", lambda: len(tftp.transfers),
                  gauge=True)  # fmt: skip
            watch(
                "racker_tftp_log_lines_suppressed",
                "TFTP warnings left out of the log by its budget (counted, not lost)",
                lambda: tftp.log_budget.suppressed,
            )

    def _watch_rogues(self, watch: Callable[..., None]) -> None:
        from racker.dhcp.rogue_watch import RogueWatcher

        rogue = next((s for s in self.servers if isinstance(s, RogueWatcher)), None)
        if rogue is None:
            return
        watch(
            "racker_dhcp_rogue_servers",
            "DHCP servers other than racker seen answering on the PXE network in the last hour",
            rogue.servers_seen,
            gauge=True,
        )
        watch(
            "racker_dhcp_rogue_replies",
            "DHCP replies (OFFER, ACK, NAK, BOOTP) of servers other than racker seen",
            lambda: rogue.tracker.replies,
        )
        watch(
            "racker_dhcp_rogue_frames_skipped",
            "DHCP server replies not parsed by the rogue watcher (over its frames a second)",
            lambda: rogue.budget.skipped,
        )

    # -- the servers ----------------------------------------------------------------------

    def _build_ra(self) -> RouterAdvertiser | None:
        # Answer IPv6 router solicitations, or iPXE waits for one before it goes on (racker.ra)
        if not self.rack.config.dhcp.router_advertisements:
            return None
        from racker.ra.server import RouterAdvertiser

        return RouterAdvertiser(self.rack.interface.name, self.rack.interface.mac)

    def _build_dhcp(self) -> DhcpServer:
        from racker.dhcp.core import build_core
        from racker.dhcp.server import DhcpServer
        from racker.dhcp.settings import settings_from_config

        inventory = self.rack.oem.inventory
        settings = settings_from_config(
            self.rack.config,
            self.rack.plan,
            self.directory.allocations,
            self.http_port,
            inventory.nodes,
            inventory.management,
        )
        # racker selftest proves itself with the HTTP token key (dhcp/selftest.py).
        from racker.dhcp.selftest import SelfTestGate
        from racker.web.keyfile import load_or_create_key

        core = build_core(
            settings,
            self.store.leases(),
            policy=self.directory.boot_action,
            keeps=self.hub.keeps,
            selftest=SelfTestGate(load_or_create_key(self.rack.state_dir / "http.key")),
        )
        server = DhcpServer(
            self.rack.interface.name, core, self.hub.publish, self.writer or self.store
        )
        self.directory.lease_lookup = server.lease_holder  # follows the core a reload swaps in
        return server

    def _build_rogue_watch(self) -> RogueWatcher:
        # Other DHCP servers answering on the PXE network (dhcp/rogue.py): warned, evented.
        from racker.dhcp.rogue_watch import RogueWatcher

        return RogueWatcher(self.rack.interface.name, self.hub.publish)

    def _build_tftp(self) -> TftpServer:
        from racker.tftp.server import TftpServer
        from racker.tftp.settings import tftp_settings

        config = self.rack.config
        mtu = config.network.mtu or self.rack.interface.mtu
        return TftpServer(
            self.server_ip,
            tftp_settings(config.tftp, mtu),
            self.hub.publish,
            policy=self.directory.may_fetch_boot_files,
            mac_for=self.directory.mac_for_ip,
            known=self.directory.knows_ip,
        )

    def _build_http(self) -> BootHttpServer:
        from racker.app.profiles_check import validate_profiles
        from racker.profiles import NodeFacts, load_catalog, settings_from_config
        from racker.tftp.files import configured_roots
        from racker.web.keyfile import load_or_create_key
        from racker.web.server import BootHttpServer

        config = self.rack.config
        settings = settings_from_config(config, self.rack.plan, self._flatcar_version())
        catalog = load_catalog(config.http.profiles_dir, settings)
        server_url = f"http://{self.server_ip}:{self.http_port}"
        validate_profiles(catalog, self.rack, settings, server_url)
        directory = self.directory
        self.render_settings = settings  # replaced by reload_stack on SIGHUP

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
            loaders=configured_roots(config.tftp),  # UEFI HTTP Boot: what TFTP would send
            loader_policy=directory.may_fetch_boot_files,  # ... to whom TFTP would send it
            page=self._rack_page(),
        )

    def _rack_page(self) -> RackFeed:
        # The rack page at / : the hub's events (a bounded subscription) and the store's
        # node states, read on a thread of its own (racker.web.page).
        from racker.app.hub import subscribe
        from racker.web.page.feed import RackFeed

        return RackFeed(self.store.path, self.directory.page_rows, lambda: subscribe(self.hub))

    def _assets_dir(self) -> Path:
        return self.rack.config.http.assets_dir or self.rack.state_dir / "assets"

    def _flatcar_version(self) -> str | None:
        from racker.mirror.flatcar import current_version

        return current_version(self._assets_dir(), self.rack.config.install.channel)
