"""``racker render`` (what a node would be served, without a server) and ``racker assets``
(the local Flatcar mirror that nodes install from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from racker.cli.root import options_of, rack_options

if TYPE_CHECKING:
    from racker.rack.config import Config


@click.command("render")
@click.argument("mac")
@click.option("--installed/--not-installed", default=None, help="Override the stored state.")
@click.option("--role", help="Render as if bootstrap gave the node this role.")
@click.option("--platform", type=click.Choice(["efi", "pcbios"]), default="efi", show_default=True)
@click.option("--json", "raw_json", is_flag=True, help="Ignition as served (data URLs encoded).")
@rack_options
@click.pass_context
def render_cmd(
    ctx: click.Context,
    mac: str,
    installed: bool | None,
    role: str | None,
    platform: str,
    raw_json: bool,
) -> None:
    """Show which group MAC matches and why, then its iPXE script and Ignition (no server)."""
    from racker.app.preview import explain_render
    from racker.model import parse_mac

    normalised = parse_mac(mac)
    if normalised is None:
        raise click.BadParameter(f"{mac!r} is not a MAC address", param_hint="MAC")
    text = explain_render(options_of(ctx), normalised, installed, role, platform, raw_json)
    click.echo(text, nl=False)


@click.group("assets")
def assets() -> None:
    """The local asset mirror (Flatcar releases) that nodes install from."""


def _assets_dir(ctx: click.Context) -> tuple[Path, Config]:
    from racker.rack.loading import read_config, state_dir

    options = options_of(ctx)
    config = read_config(options)
    return config.http.assets_dir or state_dir(options, config) / "assets", config


@assets.command("fetch")
@click.argument("os_name", metavar="OS", type=click.Choice(["flatcar"]))
@click.option("--channel", type=click.Choice(["stable", "beta", "alpha", "lts"]))
@click.option("--version", "version_", default="current", show_default=True, help="X.Y.Z")
@click.option("--base-url", help="Release server board URL holding VERSION/ and current/.")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False), help="Signing key.")
@rack_options
@click.pass_context
def assets_fetch_cmd(
    ctx: click.Context,
    os_name: str,
    channel: str | None,
    version_: str,
    base_url: str | None,
    key: Path | None,
) -> None:
    """Download a Flatcar release, verify digests and signatures, publish it in the mirror."""
    from racker.cli.progress import DownloadProgress
    from racker.mirror.flatcar import fetch_flatcar

    directory, config = _assets_dir(ctx)
    with DownloadProgress() as progress:
        result = fetch_flatcar(
            directory,
            channel=channel or config.install.channel,
            version=version_,
            base_url=base_url or config.install.release_url,
            key_file=key or config.install.signing_key,
            progress=progress,
        )
    what = "already current" if result.already_current else "fetched and verified"
    click.echo(f"Flatcar {result.version}: {what} in {result.directory}")


@assets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@rack_options
@click.pass_context
def assets_list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the Flatcar releases in the mirror and which channel each is current for."""
    from racker.mirror.flatcar import list_releases

    directory, _config = _assets_dir(ctx)
    releases = list_releases(directory)
    if as_json:
        rows = [
            {"version": r.version, "current_for": list(r.channels), "files": dict(r.files)}
            for r in releases
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not releases:
        click.echo(f"no Flatcar release in {directory} (racker assets fetch flatcar)")
    for r in releases:
        current = f"  current: {', '.join(r.channels)}" if r.channels else ""
        size = sum(s for _, s in r.files) / 1e6
        click.echo(f"flatcar {r.version}  {len(r.files)} files, {size:.1f} MB{current}")
