"""``racker power``, ``bootdev``, ``console`` and ``bmc check``: the nodes' BMCs.

NODE resolution lives in ``racker.power.targets``, the concurrent fan-out in
``racker.power.actions`` and ``racker.power.check``, drivers in ``racker.power.drivers``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from racker.cli.root import options_of, rack_options
from racker.power.drivers import DRIVERS

if TYPE_CHECKING:
    from racker.errors import BmcError
    from racker.model import Node
    from racker.power.actions import ActionRow
    from racker.power.base import BmcTarget, PowerDriver
    from racker.rack.config import Config

T = TypeVar("T")

_DRIVER_OPTION = click.option(
    "--driver",
    type=click.Choice(sorted(DRIVERS)),
    help="Power driver. [default: bmc.driver in racker.yaml, else auto]",
)


def _bmc_targets(
    ctx: click.Context, refs: tuple[str, ...], all_nodes: bool, include_management: bool = False
) -> tuple[Config, Path, list[tuple[Node, BmcTarget | BmcError]]]:
    """Config, state directory and (node, target-or-reason) pairs for NODE arguments/--all."""
    from racker.app.provision import bmc_entries

    return bmc_entries(options_of(ctx), refs, all_nodes, include_management)


def _power_driver(config: Config, state: Path, name: str | None) -> PowerDriver:
    from racker.app.provision import power_driver

    driver: PowerDriver = power_driver(config, state, name)
    return driver


def _run_bmc(driver: PowerDriver, work: Awaitable[T]) -> T:
    import asyncio

    async def run() -> T:
        try:
            return await work
        finally:
            await driver.close()

    return asyncio.run(run())


def _print_action_rows(rows: Sequence[ActionRow], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        for r in rows:
            where = f" ({r.address})" if r.address else ""
            if r.ok:
                click.echo(f"{click.style('✓', fg='green')} {r.node}{where}: {r.result}")
            else:
                click.echo(f"{click.style('✗', fg='red')} {r.node}{where}: {r.error}")
                if r.hint:
                    click.echo(f"    hint: {r.hint}")
    if not all(r.ok for r in rows):
        sys.exit(5)


@click.command("power")
@click.argument("args", nargs=-1, required=True, metavar="NODE...|--all ACTION")
@click.option("--all", "all_nodes", is_flag=True, help="Every node except the management node.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per node.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def power_cmd(
    ctx: click.Context, args: tuple[str, ...], all_nodes: bool, as_json: bool, driver: str | None
) -> None:
    """Show or change nodes' power through their BMCs, all at once.

    ACTION is status, on, off, cycle, reset or soft (ACPI shutdown). NODE is a primary MAC,
    BMC MAC, hostname or row number of nodes.csv. Exit 5 if any BMC failed."""
    from racker.power.actions import POWER_COMMANDS, apply_to_all, power_operation

    *refs, command = args
    if command not in POWER_COMMANDS:
        raise click.BadParameter(
            f"{command!r} is not one of {', '.join(POWER_COMMANDS)} (it comes last)",
            param_hint="ACTION",
        )
    config, state, entries = _bmc_targets(ctx, tuple(refs), all_nodes)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, apply_to_all(power_driver, entries, power_operation(command)))
    _print_action_rows(rows, as_json)


@click.command("bootdev")
@click.argument("args", nargs=-1, required=True, metavar="NODE...|--all PXE|DISK|BIOS|HTTP")
@click.option("--all", "all_nodes", is_flag=True, help="Every node except the management node.")
@click.option("--persistent", is_flag=True, help="For every boot, not only the next one.")
@click.option("--efi", is_flag=True, help="A UEFI boot, not legacy (http is always UEFI).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per node.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def bootdev_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    all_nodes: bool,
    persistent: bool,
    efi: bool,
    as_json: bool,
    driver: str | None,
) -> None:
    """Set the device nodes boot from next (and keep it past the BMC's 60 s timer).

    HTTP is UEFI HTTP boot, which only Redfish BMCs offer."""
    from racker.power.actions import apply_to_all, bootdev_operation
    from racker.power.base import BootDevice, BootSetting

    *refs, device = args
    if device not in ("pxe", "disk", "bios", "http"):
        raise click.BadParameter(
            f"{device!r} is not one of pxe, disk, bios, http (it comes last)",
            param_hint="DEVICE",
        )
    setting = BootSetting(BootDevice(device), persistent, efi)
    config, state, entries = _bmc_targets(ctx, tuple(refs), all_nodes)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, apply_to_all(power_driver, entries, bootdev_operation(setting)))
    _print_action_rows(rows, as_json)


@click.command("console")
@click.argument("node")
@rack_options
@click.pass_context
def console_cmd(ctx: click.Context, node: str) -> None:
    """Attach to NODE's serial console over IPMI serial-over-LAN (~. leaves).

    Redfish has no serial console: a BMC reached only over Redfish is refused."""
    from racker.errors import BmcError
    from racker.power.console import ESCAPE_HELP, require_ipmi, run_console

    config, state, [(found, target)] = _bmc_targets(ctx, (node,), False)
    if isinstance(target, BmcError):
        raise target
    driver = _power_driver(config, state, None)
    _run_bmc(driver, require_ipmi(driver, target))
    click.echo(f"{found.hostname}: serial console via {target.address} ({ESCAPE_HELP})", err=True)
    sys.exit(run_console(target))


@click.group("bmc")
def bmc() -> None:
    """Look at the rack's BMCs."""


@bmc.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def bmc_check_cmd(ctx: click.Context, as_json: bool, driver: str | None) -> None:
    """Ask every BMC at once: reachable? credentials accepted? power? boot device?

    Exit 1 if any BMC is not fine."""
    from racker.power.check import check_bmcs

    config, state, entries = _bmc_targets(ctx, (), True, include_management=True)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, check_bmcs(power_driver, entries))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        from rich.console import Console

        from racker.cli.tables import bmc_check_table

        Console(soft_wrap=False).print(bmc_check_table(rows))
    sys.exit(0 if all(r.ok for r in rows) else 1)
