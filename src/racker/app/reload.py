"""SIGHUP: re-read the files and apply them to the running boot stack.

A reload runs as a task on the boot stack's loop and does its disk I/O elsewhere: the files
are read and the profiles rendered on a thread, the allocation table is synchronised through
the store's writer (a write), the node states are read on a thread; only the swap into the
running servers happens on the loop. Reloads run one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from racker.app.stack import BootStack
from racker.rack.loading import Rack
from racker.store_writer import run_on_connection

if TYPE_CHECKING:
    from racker.profiles import Catalog, RenderSettings
    from racker.rack.allocation import Allocation
    from racker.store import Store

log = logging.getLogger("racker.serve")


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


# The reload under way per boot stack: the next one waits for it.
_reloads: weakref.WeakKeyDictionary[BootStack, asyncio.Task[bool]] = weakref.WeakKeyDictionary()


def reload_from_files(stack: BootStack, load: Callable[[], Rack]) -> asyncio.Task[bool]:
    """SIGHUP (a signal handler of the loop): reload in a task, after any reload under way;
    the task's result says whether the files were applied."""
    previous = _reloads.get(stack)
    task = asyncio.get_running_loop().create_task(_reload_after(previous, stack, load))
    _reloads[stack] = task
    return task


async def _reload_after(
    previous: asyncio.Task[bool] | None, stack: BootStack, load: Callable[[], Rack]
) -> bool:
    if previous is not None:
        with contextlib.suppress(Exception):
            await previous
    try:
        return await reload_files(stack, load)
    except Exception:  # a task's exception would only be seen at exit
        log.exception("reload failed, keeping the running configuration")
        return False


async def reload_files(stack: BootStack, load: Callable[[], Rack]) -> bool:
    """Re-read everything; invalid files keep the running configuration (logged)."""
    from racker.errors import ProblemsError, RackerError

    try:
        rack = await asyncio.to_thread(load)
        pending = await reload_stack(stack, rack)
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


async def reload_stack(stack: BootStack, rack: Rack) -> list[str]:
    """Apply ``rack`` to the running stack; return what changed but needs a restart.
    Everything that can fail (profiles, allocations) is built before anything is swapped."""
    from racker.dhcp.server import DhcpServer
    from racker.dhcp.settings import settings_from_config as dhcp_settings_from_config
    from racker.web.server import BootHttpServer

    pending = [n for n, key in RESTART_ONLY if key(rack) != key(stack.started_rack)]
    settings, catalog = await asyncio.to_thread(_profiles, stack, rack)
    log.info("reload: files read; updating the store")
    allocations = await _sync_allocations(stack, rack)
    log.info("reload: allocation table stored")
    states = await stack.directory.read_states()
    if stack.writer is not None:  # the DHCP server's reload reads them: not on the loop
        await stack.writer.prefetch_leases()
    plan = stack.started_rack.plan  # the bound address stays until a restart
    inventory = rack.oem.inventory
    dhcp = dhcp_settings_from_config(
        rack.config, plan, allocations, stack.http_port, inventory.nodes, inventory.management
    )
    # From here on, on the loop and without an await: the servers swap together. (The DHCP
    # server's reload still waits, on the loop, for a lease commit it has under way: listed in
    # docs/config.md.)
    directory = stack.directory
    for server in stack.servers:
        if isinstance(server, DhcpServer):
            server.reload(dhcp)  # leases flushed to the store and read back into a new core
        elif isinstance(server, BootHttpServer):
            server.reload(catalog)  # renders ahead once the directory below has the inventory
            stack.render_settings = settings
    stack.rack = rack
    directory.rebind(rack, allocations, states)
    return pending


def _profiles(stack: BootStack, rack: Rack) -> tuple[RenderSettings, Catalog]:
    # On a thread: reads the profiles, templates and the mirrored Flatcar version, renders.
    from racker.app.profiles_check import validate_profiles
    from racker.profiles import load_catalog, settings_from_config

    plan = stack.started_rack.plan
    settings = settings_from_config(rack.config, plan, stack._flatcar_version())
    catalog = load_catalog(rack.config.http.profiles_dir, settings)
    validate_profiles(catalog, rack, settings, f"http://{plan.server}:{stack.http_port}")
    return settings, catalog


async def _sync_allocations(stack: BootStack, rack: Rack) -> dict[str, Allocation]:
    """The allocation table for ``rack``'s inventory: a write, so through the store's writer
    (after the writes submitted before it); a stack not started writes on a thread."""
    inventory, plan = rack.oem.inventory, stack.started_rack.plan

    def sync(store: Store) -> dict[str, Allocation]:
        return store.sync_allocations(inventory, plan)

    if stack.writer is not None:
        return await asyncio.wrap_future(stack.writer.submit(sync))
    return await asyncio.to_thread(run_on_connection, stack.store.path, sync)
