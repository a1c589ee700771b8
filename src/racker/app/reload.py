"""SIGHUP: re-read the files and apply them to the running boot stack."""

from __future__ import annotations

import logging
from collections.abc import Callable

from racker.app.stack import BootStack
from racker.rack.loading import Rack

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
    from racker.app.profiles_check import validate_profiles
    from racker.dhcp.server import DhcpServer
    from racker.dhcp.settings import settings_from_config as dhcp_settings_from_config
    from racker.profiles import load_catalog, settings_from_config
    from racker.web.server import BootHttpServer

    pending = [n for n, key in RESTART_ONLY if key(rack) != key(stack.started_rack)]
    plan = stack.started_rack.plan  # the bound address stays until a restart
    settings = settings_from_config(rack.config, plan, stack._flatcar_version())
    catalog = load_catalog(rack.config.http.profiles_dir, settings)
    validate_profiles(catalog, rack, settings, f"http://{plan.server}:{stack.http_port}")
    allocations = stack.store.sync_allocations(rack.oem.inventory, plan)
    inventory = rack.oem.inventory
    dhcp = dhcp_settings_from_config(
        rack.config, plan, allocations, stack.http_port, inventory.nodes, inventory.management
    )
    directory = stack.directory
    for server in stack.servers:
        if isinstance(server, DhcpServer):
            server.reload(dhcp)  # leases flushed to the store and read back into a new core
        elif isinstance(server, BootHttpServer):
            server.reload(catalog)  # renders ahead once the directory below has the inventory
            stack.render_settings = settings
    stack.rack = rack
    directory.rebind(rack, allocations)
    return pending
