"""Loading the rack for a command: racker.yaml, the OEM files, the PXE interface, the address
plan and the state directory, checked together; and the store that goes with it."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

from racker.errors import EnvironmentProblem, InventoryError
from racker.rack.addressing import plan_addresses
from racker.rack.interfaces import add_address, local_interfaces
from racker.rack.loading import (
    Options,
    Rack,
    RackFiles,
    config_path,
    find_pxe_interface,
    read_config,
    read_rack_metadata,
    state_dir,
)
from racker.store import Store

NOT_THIS_MACHINE = "no row is the management node"

log = logging.getLogger("racker.serve")


def load_rack(options: Options) -> Rack:
    """Load and check everything; raise the first class of problem found, with all of them."""
    config = read_config(options)
    interfaces = local_interfaces()
    oem = read_rack_metadata(options, config, interfaces)
    if oem.problems:
        raise InventoryError(list(oem.problems))
    pxe, problem = find_pxe_interface(options, config, oem, interfaces)
    if pxe is None:
        assert problem is not None
        raise EnvironmentProblem(str(problem), problem.hint)
    plan = plan_addresses(config, pxe.interface.ipv4, str(config_path(options) or "racker.yaml"))
    return Rack(config, oem, pxe.interface, plan, state_dir(options, config))


def load_rack_files(options: Options) -> RackFiles:
    """racker.yaml and the OEM files for a read-only command: any machine will do, so a rack
    whose management row is not this machine is no problem here."""
    config = read_config(options)
    oem = read_rack_metadata(options, config)
    problems = [p for p in oem.problems if not p.message.startswith(NOT_THIS_MACHINE)]
    if problems:
        raise InventoryError(problems)
    return RackFiles(config, oem, state_dir(options, config))


def configure_pxe_address(rack: Rack) -> Rack:
    """Give a PXE NIC without an IPv4 address racker's (``network.server``/prefix) before the
    boot stack binds to it; the address stays when racker stops. A NIC with an address is
    never touched (``plan_addresses`` has checked it against the plan)."""
    interface = rack.interface
    if interface.ipv4:
        return rack
    address = ipaddress.IPv4Interface(f"{rack.plan.server}/{rack.plan.subnet.prefixlen}")
    add_address(interface.name, address)
    log.warning(
        "the PXE interface %s had no IPv4 address: added %s (it stays when racker stops; "
        "racker install writes a networkd file that sets it at boot)",
        interface.name,
        address,
    )
    return dataclasses.replace(rack, interface=dataclasses.replace(interface, ipv4=(address,)))


def open_store(rack: Rack) -> Store:
    return Store.open(rack.state_dir)
