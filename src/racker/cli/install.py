"""``racker version``, ``install``, ``install-on-host``, ``uninstall``, ``update``,
``upgrade`` and ``rollback``: racker's own releases on this machine. The wiring lives in
``racker.app.install``, the steps in ``racker.release``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from racker import __version__
from racker.cli.root import options_of, rack_options
from racker.errors import RackerError

if TYPE_CHECKING:
    from racker.rack.config import Config
    from racker.release.update import Installer

F = TypeVar("F", bound=Callable[..., Any])

_LAYOUT_OPTIONS = (
    click.option(
        "--root",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_ROOT",
        default="/",
        show_default=True,
        help="Install into this tree (the host's root seen from a container; tests).",
    ),
    click.option(
        "--prefix",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_PREFIX",
        default="/opt/racker",
        show_default=True,
        help="Where releases live, inside the root.",
    ),
    click.option(
        "--bin-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_BIN_DIR",
        help="Where the racker command link goes. [default: /opt/bin on Flatcar, else "
        "/usr/local/bin]",
    ),
)
_INDEX_OPTION = click.option(
    "--index", "index_url", help="Release index URL. [default: updates.url]"
)


def _layout_options(func: F) -> F:
    for option in reversed(_LAYOUT_OPTIONS):
        func = option(func)
    return func


def _installer(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None
) -> tuple[Installer, Config]:
    from racker.app.install import installer_for

    return installer_for(options_of(ctx), root, prefix, bin_dir, click.echo)


@click.command("version")
@click.option("--check", is_flag=True, help="Also say whether an update or upgrade exists.")
@click.option("--index", "index_url", help="Release index URL. [default: updates.url]")
@rack_options
@click.pass_context
def version(ctx: click.Context, check: bool, index_url: str | None) -> None:
    """Print racker's version (--check: the installed one and newer releases)."""
    if check:
        _version_check(ctx, index_url)
        return
    click.echo(f"racker {__version__}")


def _version_check(ctx: click.Context, index_url: str | None) -> None:
    """`racker version --check`: the installed release and what update/upgrade would get."""
    from racker.app.install import newer_releases, running_release

    root = Path(os.environ.get("RACKER_ROOT", "/"))
    prefix = Path(os.environ.get("RACKER_PREFIX", "/opt/racker"))
    installer, config = _installer(ctx, root, prefix, None)
    have, home = running_release(installer)
    where = f"installed in {home}" if home else "running, not installed"
    click.echo(f"racker {have} ({where})")
    found = newer_releases(installer, config, index_url, have)
    if found.update:
        click.echo(f"update available: {found.update.version} (racker update)")
    if found.upgrade:
        click.echo(
            f"upgrade available: {found.upgrade.version} (racker upgrade; may be incompatible)"
        )
    if not found.update and not found.upgrade:
        click.echo("no newer release")


@click.command("install")
@_layout_options
@click.option("--bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Install from this racker-*.tar.gz instead of the running bundle.")  # fmt: skip
@click.option("--start", is_flag=True, help="Also start the service (after factory check).")
@rack_options
@click.pass_context
def install_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, bundle: Path | None,
    start: bool,
) -> None:  # fmt: skip
    """Install this bundle under the prefix: releases/VERSION, current, the racker command
    on PATH, the systemd unit (enabled when systemd runs) and the PXE NIC's networkd file."""
    from racker.app.install import install, write_pxe_network

    installer, config = _installer(ctx, root, prefix, bin_dir)
    # A PyInstaller bundle is "frozen"; its folder holds the racker executable.
    running_bundle = Path(sys.executable).parent if getattr(sys, "frozen", False) else None
    install(
        installer,
        bundle,
        running_bundle,
        start,
        lambda: write_pxe_network(options_of(ctx), config, root, click.echo),
    )


@click.command("install-on-host")
@click.option(
    "--prefix",
    type=click.Path(path_type=Path, file_okay=False),
    default="/opt/racker",
    show_default=True,
    help="Where releases live on the host.",
)
@click.option(
    "--bin-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the racker command link goes on the host. [default: /opt/bin on "
    "Flatcar, else /usr/local/bin]",
)
@click.option("--start", is_flag=True, help="Also start the service (after factory check).")
def install_on_host_cmd(prefix: Path, bin_dir: Path | None, start: bool) -> None:
    """What racker's installer image runs (docker run --rm --privileged --pid host IMAGE):
    install this bundle onto the host, as 'racker install' there would."""
    from racker.app.install import install, write_pxe_network
    from racker.release.host import Host, host_installer

    if not getattr(sys, "frozen", False):
        raise RackerError(
            "install-on-host runs only from the bundle in racker's installer image",
            "elsewhere, use 'racker install'",
        )
    host = Host()
    # Pinned tools are downloaded from the container, which has no CA certificates.
    os.environ.setdefault("SSL_CERT_FILE", str(host.root / "etc/ssl/certs/ca-certificates.crt"))
    installer, options, config = host_installer(host, prefix, bin_dir, click.echo)

    def pxe_network() -> Path | None:
        return write_pxe_network(options, config, host.root, installer.say)

    install(installer, None, Path(sys.executable).parent, start, pxe_network)
    if installer.systemctl.available() and not start and not installer.systemctl.is_active():
        click.echo("start it after 'racker factory check': systemctl start racker")


@click.command("uninstall")
@_layout_options
@rack_options
@click.pass_context
def uninstall_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Remove racker (releases, command, unit); never the state directory or OEM files."""
    from racker.app.install import uninstall

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    for path in uninstall(installer):
        click.echo(f"removed {path}")
    click.echo("kept the state directory and the OEM files")


@click.command("update")
@_layout_options
@_INDEX_OPTION
@rack_options
@click.pass_context
def update_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, index_url: str | None
) -> None:
    """Install the newest compatible release (same MAJOR.MINOR) and restart the service."""
    from racker.app.install import update

    installer, config = _installer(ctx, root, prefix, bin_dir)
    found = update(installer, config, index_url)
    if found.update is None:
        click.echo(f"racker {found.installed} is the newest compatible release")
    if found.upgrade is not None:
        click.echo(f"an incompatible upgrade exists: {found.upgrade.version} (racker upgrade)")


@click.command("upgrade")
@_layout_options
@_INDEX_OPTION
@click.option("--yes", is_flag=True, help="Do not ask before upgrading.")
@rack_options
@click.pass_context
def upgrade_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, index_url: str | None,
    yes: bool,
) -> None:  # fmt: skip
    """Install the newest release, which may be incompatible, after showing what changes."""
    from racker.app.install import upgrade

    def confirm(changes: Sequence[str]) -> None:
        for line in changes:
            click.echo(line)
        if not yes:
            if not sys.stdin.isatty():
                raise RackerError("not on a terminal: cannot ask", "pass --yes to upgrade")
            click.confirm("upgrade?", abort=True)

    installer, config = _installer(ctx, root, prefix, bin_dir)
    found = upgrade(installer, config, index_url, confirm)
    if found.upgrade is None and found.update is None:
        click.echo(f"racker {found.installed} is the newest release")


@click.command("rollback")
@_layout_options
@rack_options
@click.pass_context
def rollback_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Make the release that the last update/upgrade replaced current again."""
    from racker.app.install import rollback

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    rollback(installer)
