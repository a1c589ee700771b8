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


def find_pxe_interface(
    options: Options, config: Config, oem: OemData, interfaces: list[LocalInterface]
) -> tuple[LocalInterface | None, Problem | None]:
    """The PXE interface: --interface, racker.yaml's ``interface``, the local NIC whose MAC is
    in ``pxe_interface``, else the one with the management row's secondary MAC."""
    by_name = {i.name: i for i in interfaces}
    wanted = options.interface or config.interface
    if wanted:
        found = by_name.get(wanted)
        if found is None:
            names = ", ".join(sorted(by_name)) or "none"
            return None, Problem(
                "--interface" if options.interface else "racker.yaml",
                None,
                f"no network interface named {wanted!r} on this machine",
                f"interfaces here: {names}",
            )
        return found, None
    inventory = oem.inventory
    candidates = []
    if inventory.pxe_interface_mac:
        candidates.append((inventory.pxe_interface_mac, "pxe_interface"))
    if inventory.management and inventory.management.secondary_mac:
        candidates.append((inventory.management.secondary_mac, "the management row"))
    for mac, origin in candidates:
        for interface in interfaces:
            if interface.mac == mac:
                return interface, None
        return None, Problem(
            str(oem.directory / "nodes.csv") if origin != "pxe_interface" else origin,
            inventory.management.line
            if inventory.management and origin != "pxe_interface"
            else None,
            f"no local interface has the PXE MAC {mac} (from {origin})",
            "pass --interface IF",
        )
    return None, Problem(
        str(oem.directory),
        None,
        "cannot tell which interface is the PXE interface",
        "write its MAC to pxe_interface, use the 5-column nodes.csv, or pass --interface IF",
    )
