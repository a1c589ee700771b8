"""Loading the rack for a command: racker.yaml, the OEM files, the PXE interface, the address
plan and the state directory, checked together; and the store that goes with it."""

from __future__ import annotations

from racker.errors import EnvironmentProblem, InventoryError
from racker.rack.addressing import plan_addresses
from racker.rack.interfaces import local_interfaces
from racker.rack.loading import (
    Options,
    Rack,
    config_path,
    find_pxe_interface,
    read_config,
    read_rack_metadata,
    state_dir,
)
from racker.store import Store


def load_rack(options: Options) -> Rack:
    """Load and check everything; raise the first class of problem found, with all of them."""
    config = read_config(options)
    interfaces = local_interfaces()
    oem = read_rack_metadata(options, config, interfaces)
    if oem.problems:
        raise InventoryError(list(oem.problems))
    interface, problem = find_pxe_interface(options, config, oem, interfaces)
    if interface is None:
        assert problem is not None
        raise EnvironmentProblem(str(problem), problem.hint)
    address = interface.ipv4[0] if interface.ipv4 else None
    plan = plan_addresses(config, address, str(config_path(options) or "racker.yaml"))
    return Rack(config, oem, interface, plan, state_dir(options, config))


def open_store(rack: Rack) -> Store:
    return Store.open(rack.state_dir)
