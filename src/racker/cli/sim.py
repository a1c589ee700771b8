"""``racker sim`` (a simulated rack on this machine) and ``racker demo``. The simulator lives
in ``racker.sim``; these commands parse flags, read where the sim guest is cached, and print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from racker.sim.spec import FIRMWARE_CHOICES

_SIM_NAME = click.option(
    "--name", default="rack", show_default=True, help="Sim name (namespaces rsim-NAME-m/-r)."
)


def _guest_cache() -> Path:
    """$RACKER_SIM_CACHE, or the default cache (which follows $XDG_CACHE_HOME when not root)."""
    from racker.sim.guest import cache_dir

    return cache_dir(os.environ.get("RACKER_SIM_CACHE"), os.environ.get("XDG_CACHE_HOME"))


@click.group("sim")
def sim() -> None:
    """A simulated rack on this machine: QEMU VMs with real firmware behind ipmi_sim BMCs."""


@sim.command("up")
@click.option("--nodes", "count", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option("--firmware", type=click.Choice(FIRMWARE_CHOICES), default="mixed", show_default=True)
@click.option("--subnet", default="10.99.0.0/24", show_default=True, help="The rack segment.")
@_SIM_NAME
def sim_up_cmd(count: int, firmware: str, subnet: str, name: str) -> None:
    """Create the sim (needs root); racker then runs inside its management namespace."""
    from racker.sim.rack import sim_up
    from racker.sim.spec import SimSpecError, plan_sim

    try:
        spec = plan_sim(name, count, firmware, subnet)
    except (SimSpecError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    sim_up(spec, guest_cache=_guest_cache())
    click.echo(f"sim {name} up: {count} node(s) in {spec.rack_ns}, management in {spec.mgmt_ns}")
    for node in spec.nodes:
        click.echo(f"  {node.hostname}  {node.mac}  {node.firmware:9}  BMC {node.bmc_host}:623")
    run = f"ip netns exec {spec.mgmt_ns} racker --config {spec.config_path}"
    click.echo(f"next: {run} bootstrap      (or serve, status, power ...)")
    click.echo(f"done: racker sim down --name {name}")


@sim.command("down")
@_SIM_NAME
def sim_down_cmd(name: str) -> None:
    """Stop every VM and BMC of the sim and remove its namespaces, taps and files."""
    from racker.sim.rack import sim_down

    removed = sim_down(name)
    click.echo(f"sim {name} removed: {'; '.join(removed)}" if removed else f"no sim {name}")


@sim.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_SIM_NAME
def sim_status_cmd(as_json: bool, name: str) -> None:
    """One row per simulated node: BMC, power, boot device, disk, last console line."""
    from racker.sim.rack import sim_status

    spec, rows = sim_status(name)
    data = [
        {
            "node": r.node.name,
            "hostname": r.node.hostname,
            "mac": r.node.mac,
            "firmware": r.node.firmware,
            "bmc": f"{r.node.bmc_host}:623",
            "bmc_up": r.bmc_up,
            "power": "on" if r.power else "off",
            "boot": r.boot,
            "installed": r.installed,
            "console": r.last,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"sim {name}: {spec.config_path}")
    for d in data:
        bmc = d["bmc"] if d["bmc_up"] else f"{d['bmc']} (DOWN)"
        disk = "installed" if d["installed"] else "empty"
        click.echo(f"  {d['node']:6} {d['firmware']:9} {bmc:18} power {d['power']:3} ", nl=False)
        click.echo(f"boot {d['boot']:7} disk {disk:9} {d['console']}")


@click.command("demo")
@click.option("--nodes", "count", type=click.IntRange(1, 8), default=3, show_default=True)
@click.option("--firmware", type=click.Choice(FIRMWARE_CHOICES), default="mixed", show_default=True)
@click.option("--keep", is_flag=True, help="Leave the sim up afterwards (racker sim down).")
def demo_cmd(count: int, firmware: str, keep: bool) -> None:
    """Simulate a rack, provision it with racker bootstrap, show racker status, tear down."""
    from racker.sim.demo import run_demo

    sys.exit(run_demo(click.echo, count, firmware, keep=keep, guest_cache=_guest_cache()))
