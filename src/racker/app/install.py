"""Installing racker itself (layer 5): ``racker install``, ``uninstall``, ``update``,
``upgrade``, ``rollback`` and ``version --check`` wired to the rack's configuration.

The steps live in ``racker.release`` (layout, update, index, systemd); this module builds the
``Installer`` from racker.yaml and the install location, and holds the install lock around
every change, so two of these never run at once on one prefix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path

from racker import __version__
from racker.errors import RackerError
from racker.rack.addressing import plan_addresses
from racker.rack.config import Config
from racker.rack.interfaces import local_interfaces
from racker.rack.loading import Options, find_pxe_interface, oem_dir, read_config, state_dir
from racker.rack.networkd import NETWORK_FILE, pxe_network_file
from racker.rack.oem import read_oem
from racker.release.index import ReleaseIndex, VersionCheck, check_versions, describe_upgrade
from racker.release.layout import Layout, default_bin_dir, installed, locked
from racker.release.systemd import Systemctl
from racker.release.update import Installer, Say, load_index

# Shown the changes an upgrade brings; returns to go ahead, raises to stop.
Confirm = Callable[[Sequence[str]], None]


def installer_for(
    options: Options, root: Path, prefix: Path, bin_dir: Path | None, say: Say
) -> tuple[Installer, Config]:
    """The installer for ``prefix`` inside ``root`` (the host's root seen from a container, or
    a test tree), and the configuration it was built from."""
    config = read_config(options)
    layout = Layout(root, prefix, bin_dir or default_bin_dir(root))
    installer = Installer(
        layout,
        Systemctl(root),
        say,
        signing_key=config.updates.signing_key,
        tools=config.tools,
        state_dir=root / state_dir(options, config).relative_to("/"),
    )
    return installer, config


def release_index(config: Config, index_url: str | None) -> ReleaseIndex:
    """The release index at ``index_url``, else at ``updates.url``."""
    url = index_url or config.updates.url
    if not url:
        raise RackerError("no release index configured", "set updates.url in racker.yaml")
    return load_index(url)


def running_release(installer: Installer) -> tuple[str, Path | None]:
    """The installed release's version and home, or this racker's version and None when racker
    is not installed there."""
    info = installed(installer.layout)
    if info is None:
        return __version__, None
    return info.version, installer.layout.home


def newer_releases(
    installer: Installer, config: Config, index_url: str | None, have: str
) -> VersionCheck:
    """What ``racker update`` and ``racker upgrade`` would install over version ``have``."""
    return check_versions(release_index(config, index_url), have, installer.machine)


def install(
    installer: Installer,
    bundle: Path | None,
    running_bundle: Path | None,
    start: bool,
    pxe_network: Callable[[], Path | None] | None = None,
) -> None:
    """Install the archive ``bundle``, else the unpacked bundle this racker runs from
    (``running_bundle``; None when racker runs from a Python environment); then
    ``pxe_network`` (``write_pxe_network``) gives the PXE NIC its address at boot."""
    with locked(installer.layout):
        if bundle is not None:
            installer.install_archive(bundle, start)
        elif running_bundle is not None:
            installer.install_folder(running_bundle, start)
        else:
            raise RackerError(
                "this racker is not a bundle (it runs from a Python environment)",
                "run 'racker install' from the unpacked bundle, or pass --bundle FILE.tar.gz",
            )
        if pxe_network is not None:
            pxe_network()


def uninstall(installer: Installer) -> list[Path]:
    """Remove releases, command, unit and the PXE NIC's networkd file; returns what was
    removed (never the state directory or the OEM files)."""
    removed = installer.uninstall()
    network = installer.layout.root / NETWORK_FILE.relative_to("/")
    if network.exists():
        network.unlink()
        removed.append(network)
    return removed


def write_pxe_network(options: Options, config: Config, root: Path, say: Say) -> Path | None:
    """Write the PXE NIC's ``.network`` file under ``root`` (racker's address at boot).

    The NIC is the MAC in the OEM files (``pxe_interface``, else the management row's secondary
    MAC); installing into this machine's own root, it may also be found as ``racker serve``
    finds it. Without one, nothing is written and ``say`` tells how to get it."""
    oem_files = root / oem_dir(options, config).relative_to("/")
    here = root == Path("/")
    interfaces = local_interfaces() if here else []
    oem = read_oem(oem_files, frozenset(i.mac for i in interfaces if i.mac))
    mac = oem.inventory.pxe_interface_mac or (
        oem.inventory.management.secondary_mac if oem.inventory.management else None
    )
    addresses: tuple[ipaddress.IPv4Interface, ...] = ()
    if here:
        pxe, _problem = find_pxe_interface(options, config, oem, interfaces)
        if pxe is not None:
            mac, addresses = pxe.interface.mac, pxe.interface.ipv4
    if mac is None:
        say(
            "no networkd file for the PXE NIC: the OEM files do not name it; write its MAC to "
            f"{oem_files}/pxe_interface (racker factory init --pxe-interface MAC) and run "
            "racker install again, or racker serve adds the address when it starts"
        )
        return None
    plan = plan_addresses(config, addresses)
    address = ipaddress.IPv4Interface(f"{plan.server}/{plan.subnet.prefixlen}")
    path = root / NETWORK_FILE.relative_to("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(pxe_network_file(mac, address), encoding="utf-8")
    tmp.replace(path)
    say(f"wrote {path}: {address} on the NIC {mac} at boot, no DHCP client there")
    return path


def update(installer: Installer, config: Config, index_url: str | None) -> VersionCheck:
    """Install the newest compatible release (or only the pinned tools when there is none)."""
    with locked(installer.layout):
        found = installer.check(release_index(config, index_url))
        if found.update is None:
            installer.install_tools()
        else:
            installer.apply(found.update)
    return found


def upgrade(
    installer: Installer, config: Config, index_url: str | None, confirm: Confirm
) -> VersionCheck:
    """Install the newest release, which may be incompatible, once ``confirm`` has seen what
    changes; with nothing newer, install only the pinned tools."""
    with locked(installer.layout):
        current = installer.current()
        found = installer.check(release_index(config, index_url))
        target = found.upgrade or found.update
        if target is None:
            installer.install_tools()
            return found
        confirm(describe_upgrade(current.version, current.state_schema, target))
        installer.apply(target)
    return found


def rollback(installer: Installer) -> None:
    """Make the release that the last update/upgrade replaced current again."""
    with locked(installer.layout):
        installer.rollback()
