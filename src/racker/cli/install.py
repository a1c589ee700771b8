"""``racker version``, ``install``, ``uninstall``, ``update``, ``upgrade`` and ``rollback``:
racker's own releases on this machine. The steps live in ``racker.release`` (layout, update,
index, systemd)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from racker import __version__
from racker.cli.root import options_of, rack_options
from racker.errors import RackerError

if TYPE_CHECKING:
    from racker.rack.config import Config
    from racker.release.index import ReleaseIndex
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
    from racker.rack.loading import read_config, state_dir
    from racker.release.layout import Layout, default_bin_dir
    from racker.release.systemd import Systemctl
    from racker.release.update import Installer

    options = options_of(ctx)
    config = read_config(options)
    layout = Layout(root, prefix, bin_dir or default_bin_dir(root))
    return Installer(
        layout,
        Systemctl(root),
        click.echo,
        signing_key=config.updates.signing_key,
        tools=config.tools,
        state_dir=root / state_dir(options, config).relative_to("/"),
    ), config


def _release_index(config: Config, index_url: str | None) -> ReleaseIndex:
    from racker.release.update import load_index

    url = index_url or config.updates.url
    if not url:
        raise RackerError("no release index configured", "set updates.url in racker.yaml")
    return load_index(url)


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
    from racker.release.index import check_versions
    from racker.release.layout import installed

    root = Path(os.environ.get("RACKER_ROOT", "/"))
    prefix = Path(os.environ.get("RACKER_PREFIX", "/opt/racker"))
    installer, config = _installer(ctx, root, prefix, None)
    info = installed(installer.layout)
    have = info.version if info is not None else __version__
    where = f"installed in {installer.layout.home}" if info else "running, not installed"
    click.echo(f"racker {have} ({where})")
    found = check_versions(_release_index(config, index_url), have, installer.machine)
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
    on PATH and the systemd unit (enabled when systemd runs)."""
    from racker.release.layout import locked

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        if bundle is not None:
            installer.install_archive(bundle, start)
        elif getattr(sys, "frozen", False):
            installer.install_folder(Path(sys.executable).parent, start)
        else:
            raise RackerError(
                "this racker is not a bundle (it runs from a Python environment)",
                "run 'racker install' from the unpacked bundle, or pass --bundle FILE.tar.gz",
            )


@click.command("uninstall")
@_layout_options
@rack_options
@click.pass_context
def uninstall_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Remove racker (releases, command, unit); never the state directory or OEM files."""
    installer, _config = _installer(ctx, root, prefix, bin_dir)
    for path in installer.uninstall():
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
    from racker.release.layout import locked

    installer, config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        found = installer.check(_release_index(config, index_url))
        if found.update is None:
            installer.install_tools()
            click.echo(f"racker {found.installed} is the newest compatible release")
        else:
            installer.apply(found.update)
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
    from racker.release.index import describe_upgrade
    from racker.release.layout import locked

    installer, config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        current = installer.current()
        found = installer.check(_release_index(config, index_url))
        target = found.upgrade or found.update
        if target is None:
            installer.install_tools()
            click.echo(f"racker {current.version} is the newest release")
            return
        for line in describe_upgrade(current.version, current.state_schema, target):
            click.echo(line)
        if not yes:
            if not sys.stdin.isatty():
                raise RackerError("not on a terminal: cannot ask", "pass --yes to upgrade")
            click.confirm("upgrade?", abort=True)
        installer.apply(target)


@click.command("rollback")
@_layout_options
@rack_options
@click.pass_context
def rollback_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Make the release that the last update/upgrade replaced current again."""
    from racker.release.layout import locked

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        installer.rollback()
