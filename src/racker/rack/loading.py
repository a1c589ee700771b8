"""Reading the rack's files: where racker.yaml, the OEM directory and the state directory are
(flags, racker.yaml, defaults), what they hold, and which local NIC is the PXE interface.

``Rack`` is the checked result; ``racker.app.load.load_rack`` assembles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from racker.errors import Problem
from racker.model import NetworkPlan
from racker.rack.config import DEFAULT_OEM_DIR, DEFAULT_STATE_DIR, Config, load_config
from racker.rack.interfaces import LocalInterface, local_interfaces
from racker.rack.oem import OemData, read_oem

DEFAULT_CONFIG = Path("/etc/racker/racker.yaml")


@dataclass(frozen=True)
class Options:
    """What the CLI read from flags and the environment; None means "use the default"."""

    oem_dir: Path | None = None
    state_dir: Path | None = None
    config: Path | None = None
    interface: str | None = None


@dataclass(frozen=True)
class Rack:
    """Everything a boot-stack or BMC command needs, checked."""

    config: Config
    oem: OemData
    interface: LocalInterface
    plan: NetworkPlan
    state_dir: Path


def config_path(options: Options) -> Path | None:
    if options.config is not None:
        return options.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def read_config(options: Options) -> Config:
    return load_config(config_path(options))


def oem_dir(options: Options, config: Config) -> Path:
    return options.oem_dir or config.oem_dir or DEFAULT_OEM_DIR


def state_dir(options: Options, config: Config) -> Path:
    return options.state_dir or config.state_dir or DEFAULT_STATE_DIR


def read_rack_metadata(
    options: Options, config: Config, interfaces: list[LocalInterface] | None = None
) -> OemData:
    interfaces = local_interfaces() if interfaces is None else interfaces
    local_macs = frozenset(i.mac for i in interfaces if i.mac)
    return read_oem(oem_dir(options, config), local_macs)


@dataclass(frozen=True)
class RackFiles:
    """What read-only commands (``racker status``, ``bootstrap --dry-run``) need: the files and
    the state directory, on any machine, with no PXE interface."""

    config: Config
    oem: OemData
    state_dir: Path


@dataclass(frozen=True)
class PxeInterface:
    """The PXE interface found, and how (for ``racker factory check``)."""

    interface: LocalInterface
    how: str


def find_pxe_interface(
    options: Options, config: Config, oem: OemData, interfaces: list[LocalInterface]
) -> tuple[PxeInterface | None, Problem | None]:
    """The PXE interface: --interface, racker.yaml's ``interface``, the local NIC whose MAC is
    in ``pxe_interface``, the one with the management row's secondary MAC, else — when the
    management row's MAC is a NIC of this machine and exactly one other Ethernet NIC exists —
    that other NIC (a 4-column nodes.csv on a management node with two NICs)."""
    by_name = {i.name: i for i in interfaces}
    wanted = options.interface or config.interface
    if wanted:
        origin = "--interface" if options.interface else "racker.yaml"
        found = by_name.get(wanted)
        if found is None:
            names = ", ".join(sorted(by_name)) or "none"
            return None, Problem(
                origin,
                None,
                f"no network interface named {wanted!r} on this machine",
                f"interfaces here: {names}",
            )
        return PxeInterface(found, f"from {origin}"), None
    inventory = oem.inventory
    candidates = []
    if inventory.pxe_interface_mac:
        candidates.append((inventory.pxe_interface_mac, "pxe_interface"))
    if inventory.management and inventory.management.secondary_mac:
        candidates.append((inventory.management.secondary_mac, "the management row"))
    for mac, origin in candidates:
        for interface in interfaces:
            if interface.mac == mac:
                return PxeInterface(interface, f"its MAC is in {origin}"), None
        return None, Problem(
            str(oem.directory / "nodes.csv") if origin != "pxe_interface" else origin,
            inventory.management.line
            if inventory.management and origin != "pxe_interface"
            else None,
            f"no local interface has the PXE MAC {mac} (from {origin})",
            "pass --interface IF",
        )
    management = inventory.management
    primary = next((i for i in interfaces if management and i.mac == management.primary_mac), None)
    others = [i for i in interfaces if i.ethernet and i is not primary]
    if primary is not None and len(others) == 1:
        how = f"the one Ethernet NIC besides the management row's {primary.name}"
        return PxeInterface(others[0], how), None
    if oem.has_secondary:  # the management row's secondary MAC would have named it
        hint = "add the management node's row to nodes.csv, write the PXE NIC's MAC to "
        hint += "pxe_interface, or pass --interface IF"
    else:
        hint = "write its MAC to pxe_interface, use the 5-column nodes.csv, or pass --interface IF"
    detail = ""
    if primary is not None and others:
        detail = f" (Ethernet NICs besides {primary.name}: {', '.join(i.name for i in others)})"
    return None, Problem(
        str(oem.directory),
        None,
        f"cannot tell which interface is the PXE interface{detail}",
        hint,
    )
