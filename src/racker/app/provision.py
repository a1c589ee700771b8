"""`racker bootstrap` and `racker status` wired to the rack (layer 5, beside the boot stack).

racker bootstrap runs the boot stack in-process, or follows a running racker serve through the
shared store: never two boot stacks on one interface.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from racker.app.load import configure_pxe_address, load_rack
from racker.app.stack import COMMIT_DELAY_ENV, BootStack
from racker.errors import RackerError
from racker.events import Event, Publish, discard
from racker.model import Node
from racker.rack import loading
from racker.rack.config import Config
from racker.rack.loading import Options, Rack, RackFiles
from racker.rack.oem import Credentials
from racker.store import Store
from racker.store_writer import StoreReader, StoreWriter

if TYPE_CHECKING:
    from racker.bootstrap.orchestrator import Ask, RunOptions, RunResult
    from racker.bootstrap.plan import Plan
    from racker.bootstrap.status import StatusRow
    from racker.errors import BmcError
    from racker.power.base import BmcCredentials, BmcTarget, PowerDriver
    from racker.rack.allocation import Allocation

log = logging.getLogger("racker.bootstrap")


def bmc_credentials(creds: Credentials | None) -> BmcCredentials | None:
    """The OEM credentials as the power drivers take them (``racker.power.base``)."""
    from racker.power.base import BmcCredentials

    return BmcCredentials(creds.user, creds.password.reveal()) if creds else None


def power_driver(
    config: Config, state: Path, name: str | None = None, publish: Publish = discard
) -> PowerDriver:
    """The configured power driver (``bmc.driver``, or ``name`` from --driver)."""
    from racker.power.drivers import make_power_driver

    return make_power_driver(config.bmc, name, publish, state)


def bmc_entries(
    options: Options, refs: tuple[str, ...], all_nodes: bool, include_management: bool = False
) -> tuple[Config, Path, list[tuple[Node, BmcTarget | BmcError]]]:
    """Config, state directory and (node, BmcTarget or the reason there is none) for the
    NODE arguments or --all of the power commands."""
    from racker.errors import InventoryError, StateError
    from racker.power.targets import resolve_targets

    config = loading.read_config(options)
    oem = loading.read_rack_metadata(options, config)
    if oem.problems:
        raise InventoryError(list(oem.problems))
    credentials = bmc_credentials(oem.credentials)
    state = loading.state_dir(options, config)
    allocations: dict[str, Allocation] = {}
    try:
        # Allocate as 'racker serve' would (stable addresses); without a PXE interface here,
        # use what serve stored.
        try:
            rack = load_rack(options)
        except RackerError:
            rack = None
        with Store.open(state) as store:
            if rack is not None:
                allocations = store.sync_allocations(rack.oem.inventory, rack.plan)
            else:
                allocations = store.allocations()
    except StateError as err:
        log.info("no BMC allocations (%s); only bmc.addresses can be used", err.message)
    entries: list[tuple[Node, BmcTarget | BmcError]] = []
    entries += resolve_targets(
        oem.inventory,
        refs,
        all_nodes=all_nodes,
        credentials=credentials,
        allocations=allocations,
        overrides=config.bmc.addresses,
        include_management=include_management,
        source=str(loading.config_path(options) or "racker.yaml"),
    )
    return config, state, entries


def bootstrap_targets(
    rack: Rack, store: Store, nodes: list[Node]
) -> dict[str, BmcTarget | BmcError]:
    """{primary MAC: BmcTarget or the BmcError saying why racker cannot reach the BMC}."""
    from racker.power.targets import bmc_targets, static_addresses

    credentials = bmc_credentials(rack.oem.credentials)
    allocations = store.sync_allocations(rack.oem.inventory, rack.plan)
    static = static_addresses(rack.oem.inventory, rack.config.bmc.addresses)
    return {n.primary_mac: t for n, t in bmc_targets(nodes, credentials, allocations, static)}


def boot_stack_running(rack: Rack) -> bool:
    """Something (a racker serve) already answers on this rack's boot HTTP address."""
    import socket

    try:
        with socket.create_connection((str(rack.plan.server), rack.config.http.port), 0.5):
            return True
    except OSError:
        return False


async def run_bootstrap(
    rack: Rack,
    store: Store,
    plan: Plan,
    options: RunOptions,
    *,
    publish: Publish = discard,
    driver: PowerDriver | None = None,
    driver_name: str | None = None,
    ask: Ask | None = None,
) -> RunResult:
    """One bootstrap run; returns its ``RunResult``. The caller holds the ``RunLock``.

    ``publish`` is told every event of the run (the CLI's progress view)."""
    from racker.bootstrap.machine import Phase, boot_action
    from racker.bootstrap.orchestrator import Bootstrap, NodeTarget
    from racker.bootstrap.sharing import follow_store
    from racker.events import NodeStateEvent

    bmcs = bootstrap_targets(rack, store, [p.node for p in plan.nodes])
    targets = [NodeTarget(p, bmcs[p.node.primary_mac]) for p in plan.nodes]
    stack = None
    if not boot_stack_running(rack):
        rack = configure_pxe_address(rack)
        stack = BootStack(rack, store)
    own_driver = driver is None
    if driver is None:
        publish_bmc = stack.hub.publish if stack is not None else discard
        driver = power_driver(rack.config, rack.state_dir, driver_name, publish_bmc)

    def publish_run(event: Event) -> None:
        publish(event)
        if stack is not None and isinstance(event, NodeStateEvent) and event.mac:
            stack.directory.overrides[event.mac] = boot_action(Phase(event.new))

    # The orchestrator's node states, off the loop: a writer thread of its own (the boot
    # stack's writer exists only once it starts, and a followed serve has its own).
    writer = StoreWriter(store.path, commit_delay=float(os.environ.get(COMMIT_DELAY_ENV) or 0))
    writer.start()
    boot = Bootstrap(
        targets,
        driver,
        store,
        options,
        publish=publish_run,
        log_dir=rack.state_dir / "bootstrap",
        macs_by_address={str(a.address): mac for mac, a in store.allocations().items()},
        ask=ask,
        record_events=False,  # the hub (ours or serve's) writes every event to the store
        jobs=writer,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, boot.cancel)
    stop = asyncio.Event()
    follower = None
    try:
        if stack is not None:
            stack.hub.subscribers.append(boot.feed)
            await stack.start()
        else:
            log.info("a boot stack already runs on %s: following it", rack.plan.server)
            follower = asyncio.create_task(follow_store(StoreReader(store.path), boot.feed, stop))
        return await boot.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stop.set()
        if follower is not None:
            await follower
        if stack is not None:
            await stack.close()
        await asyncio.to_thread(writer.close)  # boot.run's journal is committed already
        if own_driver:
            await driver.close()


def apply_lokomotive(
    rack: Rack, plan: Plan, cluster_name: str
) -> tuple[Path, list[str], int | None]:
    """Write the lokocfg; run ``lokoctl cluster apply`` when it is on PATH (exit code), else
    return None as the code so the caller prints the command."""
    import shutil
    import subprocess

    from racker.bootstrap.lokomotive import (
        CONFIG_NAME,
        ClusterSettings,
        apply_command,
        render_lokocfg,
    )

    directory = rack.state_dir / "lokomotive"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = ClusterSettings(
        cluster_name=cluster_name,
        http_endpoint=f"http://{rack.plan.server}:{rack.config.http.port}",
        asset_dir=directory / "assets",
        ssh_pubkeys=tuple(rack.config.ssh_authorized_keys),
        os_channel=rack.config.install.channel,
        os_version=rack.config.install.version,
    )
    path = directory / CONFIG_NAME
    path.write_text(render_lokocfg(plan, settings), encoding="utf-8")
    command = apply_command(directory)
    if shutil.which("lokoctl") is None:
        return path, command, None
    return path, command, subprocess.run(command, cwd=directory, check=False).returncode


async def rack_status(
    files: RackFiles, store: Store, full: bool, driver_name: str | None = None
) -> list[StatusRow]:
    """``racker status`` rows, BMCs asked at once: from the files and the store alone (the
    addresses ``racker serve`` allocated; nothing is allocated here)."""
    from racker.bootstrap.status import collect_status
    from racker.power.targets import bmc_targets, static_addresses

    nodes = list(files.oem.inventory.provisionable)
    allocations = store.allocations()
    static = static_addresses(files.oem.inventory, files.config.bmc.addresses)
    credentials = bmc_credentials(files.oem.credentials)
    targets = {n.primary_mac: t for n, t in bmc_targets(nodes, credentials, allocations, static)}
    addresses = {mac: str(a.address) for mac, a in allocations.items()}
    driver = power_driver(files.config, files.state_dir, driver_name)
    try:
        return await collect_status(
            nodes, targets, driver, store, addresses, full, files.config.bmc.timeout
        )
    finally:
        await driver.close()
