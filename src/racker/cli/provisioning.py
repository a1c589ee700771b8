"""``racker bootstrap`` (PXE boot and install the rack's nodes) and ``racker status`` (one row
per node); both wired to the rack by ``racker.app.provision``."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, cast

import click

from racker.cli.root import event_loop_choice, options_of, rack_options

if TYPE_CHECKING:
    from racker.bootstrap.machine import NodeRecord
    from racker.bootstrap.orchestrator import Ask, Decision, OnFailure


def _ask_on_tty() -> Ask:
    """--on-failure ask: the operator decides, in a thread so the other nodes keep going."""

    async def ask(name: str, rec: NodeRecord) -> Decision:
        import asyncio

        def prompt() -> Decision:
            click.echo(f"\n{name} failed after {rec.attempt} attempt(s): {rec.reason}", err=True)
            answer: Decision = click.prompt(
                "retry, exclude or cancel?",
                type=click.Choice(["retry", "exclude", "cancel"]),
                default="exclude",
                err=True,
            )
            return answer

        return await asyncio.to_thread(prompt)

    return ask


@click.command("bootstrap")
@click.option(
    "--provision",
    type=click.Choice(["flatcar", "lokomotive"]),
    default="flatcar",
    show_default=True,
    help="flatcar: every node gets Flatcar; lokomotive: Flatcar plus Kubernetes roles.",
)
@click.option("--controllers", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--controller-type", help="Node type (nodes.csv) of the controllers.")
@click.option("--storage-type", help="Node type of the storage workers.")
@click.option("--storage-count", type=click.IntRange(0), default=0, show_default=True)
@click.option("--cluster-name", default="racker", show_default=True, help="Lokomotive cluster.")
@click.option("--nodes", "node_refs", multiple=True, help="Only these nodes (repeatable).")
@click.option("--exclude", "exclude_refs", multiple=True, help="Not these nodes (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit; nothing is powered.")
@click.option("--reprovision", is_flag=True, help="Install ready nodes again.")
@click.option("--parallel", type=click.IntRange(0), default=0, help="Nodes in flight (0: all).")
@click.option(
    "--stagger",
    type=click.FloatRange(0),
    default=2.0,
    show_default=True,
    help="Seconds between two power-ons.",
)
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True)
@click.option(
    "--on-failure",
    type=click.Choice(["ask", "retry", "exclude", "cancel"]),
    default="ask",
    show_default=True,
    help="When a node's retries are used up (ask prompts only on a TTY, else excludes).",
)
@click.option("--efi/--no-efi", default=False, help="Ask BMCs for UEFI boot.")
@click.option("--timeout-scale", type=click.FloatRange(min=0.001), default=1.0, hidden=True)
@click.option("--driver", "driver_name", type=click.Choice(["ipmi", "fake"]), help="Power driver.")
@click.option("--json", "as_json", is_flag=True, help="Print an event stream (JSON lines).")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def bootstrap_cmd(
    ctx: click.Context,
    provision: str,
    controllers: int,
    controller_type: str | None,
    storage_type: str | None,
    storage_count: int,
    cluster_name: str,
    node_refs: tuple[str, ...],
    exclude_refs: tuple[str, ...],
    dry_run: bool,
    reprovision: bool,
    parallel: int,
    stagger: float,
    retries: int,
    on_failure: str,
    efi: bool,
    timeout_scale: float,
    driver_name: str | None,
    as_json: bool,
    interface: str | None,
) -> None:
    """PXE boot and install every node of the rack (or --nodes), and again when asked.

    Exit 0 only when every selected node is ready. Safe to run again after an interruption:
    each node continues from where it was, ready nodes are skipped.
    """
    from racker.app.load import load_rack, load_rack_files, open_store
    from racker.app.provision import apply_lokomotive, run_bootstrap
    from racker.app.run import run_event_loop
    from racker.bootstrap.machine import Deadlines
    from racker.bootstrap.orchestrator import RunOptions
    from racker.bootstrap.plan import PlanRequest, Provision, make_plan
    from racker.bootstrap.sharing import RunLock
    from racker.cli.progress import BootstrapProgress, Mode
    from racker.power.targets import select_nodes

    # The plan needs only the files: --dry-run works on any machine, with no PXE interface.
    inventory = load_rack_files(options_of(ctx, interface)).oem.inventory
    # --nodes a,b and --nodes a --nodes b both work
    refs = [r for v in node_refs for r in v.split(",") if r.strip()]
    not_refs = [r for v in exclude_refs for r in v.split(",") if r.strip()]
    chosen = select_nodes(inventory, refs, all_nodes=not refs)
    excluded = select_nodes(inventory, not_refs) if not_refs else []
    request = PlanRequest(
        Provision(provision),
        controllers,
        controller_type,
        storage_type,
        storage_count,
        reprovision,
    )
    plan = make_plan([n for n in chosen if n not in excluded], request)
    if dry_run:
        for line in plan.describe():
            click.echo(line)
        return
    rack = load_rack(options_of(ctx, interface))
    tty = sys.stdout.isatty()
    mode: Mode = "json" if as_json else "live" if tty else "plain"
    options = RunOptions(
        parallel=parallel,
        stagger=stagger,
        retries=retries,
        on_failure=cast("OnFailure", on_failure),
        reprovision=reprovision,
        efi=efi,
        deadlines=Deadlines().scaled(timeout_scale),
    )
    ask = _ask_on_tty() if on_failure == "ask" and sys.stdin.isatty() and tty else None
    with RunLock(rack.state_dir), open_store(rack) as store:
        if mode != "json":
            for line in plan.describe():
                click.echo(line)
        progress = BootstrapProgress(plan.nodes, mode, sys.stdout)
        try:
            result = run_event_loop(
                run_bootstrap(
                    rack, store, plan, options, publish=progress, driver_name=driver_name, ask=ask
                ),
                loop=event_loop_choice(),
            )
        finally:
            progress.close()
        progress.summary(result)
    if not result.ok:
        sys.exit(1)
    if plan.provision is Provision.LOKOMOTIVE:
        path, command, code = apply_lokomotive(rack, plan, cluster_name)
        click.echo(f"wrote {path}")
        if code is None:
            click.echo(f"lokoctl is not on PATH; to install Kubernetes run: {' '.join(command)}")
        elif code != 0:
            click.secho(f"'{' '.join(command)}' failed with exit code {code}", fg="red", err=True)
            sys.exit(1)


@click.command("status")
@click.option("--full", is_flag=True, help="Also MACs, BMC address, boot device, attempt, reason.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--driver", "driver_name", type=click.Choice(["ipmi", "fake"]), help="Power driver.")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def status_cmd(
    ctx: click.Context, full: bool, as_json: bool, driver_name: str | None, interface: str | None
) -> None:
    """One row per node: type, role, addresses, BMC, power, provisioning state, last event."""
    import asyncio

    from rich.console import Console

    from racker.app.load import load_rack_files
    from racker.app.provision import rack_status
    from racker.bootstrap.status import rogue_dhcp_servers
    from racker.cli.tables import rogue_dhcp_lines, status_table
    from racker.store import Store

    files = load_rack_files(options_of(ctx, interface))
    with Store.open(files.state_dir) as store:
        rows = asyncio.run(rack_status(files, store, full or as_json, driver_name))
        rogues = rogue_dhcp_servers(store, time.time())
    if as_json:
        # A list of node rows (scripts read it so); the rogue DHCP servers seen on the rack
        # network in the last 24 h concern every node, so each row carries them.
        seen = [r.to_dict() for r in rogues]
        click.echo(
            json.dumps([{**r.to_dict(), "rogue_dhcp_servers": seen} for r in rows], indent=2)
        )
        return
    # Piped (logs, `racker demo`), rich would squeeze the table into 80 columns; give it room.
    width = None if sys.stdout.isatty() else 200
    console = Console(soft_wrap=True, width=width)
    console.print(status_table(rows, full))
    for line in rogue_dhcp_lines(rogues, time.time()):
        console.print(line)
