"""Installing racker itself (layer 5): ``racker install``, ``uninstall``, ``update``,
``upgrade``, ``rollback`` and ``version --check`` wired to the rack's configuration.

The steps live in ``racker.release`` (layout, update, index, systemd); this module builds the
``Installer`` from racker.yaml and the install location, and holds the install lock around
every change, so two of these never run at once on one prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from racker import __version__
from racker.errors import RackerError
from racker.rack.config import Config
from racker.rack.loading import Options, read_config, state_dir
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
    installer: Installer, bundle: Path | None, running_bundle: Path | None, start: bool
) -> None:
    """Install the archive ``bundle``, else the unpacked bundle this racker runs from
    (``running_bundle``; None when racker runs from a Python environment)."""
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


def uninstall(installer: Installer) -> list[Path]:
    """Remove releases, command and unit; returns what was removed."""
    return installer.uninstall()


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
