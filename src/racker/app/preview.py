"""What a node's profile templates see (layer 5, beside the boot stack).

``render_context`` is shared by the HTTP server (through ``BootStack``) and ``racker render``
(``explain_render``), so both show a node exactly the same thing.
"""

from __future__ import annotations

from racker.bootstrap.machine import DISK_PHASES
from racker.errors import ConfigError, InventoryError
from racker.ignition_validate import ignition_problems
from racker.model import NetworkPlan, Node, NodeState
from racker.profiles import RenderContext, RenderSettings
from racker.rack.addressing import plan_addresses
from racker.rack.loading import Options, read_config, read_rack_metadata, state_dir
from racker.store import DB_NAME, Store


def render_context(
    *,
    node: Node | None,
    management: bool,
    state: NodeState | None,
    installed: bool,
    address: str | None,
    server_url: str,
    settings: RenderSettings,
    role: str | None = None,
    token: str = "",
) -> RenderContext:
    """What the profile templates see for one machine (the HTTP server adds real tokens)."""
    key = node.primary_mac if node else ""
    return RenderContext(
        node=node,
        role=role or ((state.data or {}).get("role") if state else None),
        installed=installed,
        address=address,
        server_url=server_url,
        ignition_url=f"{server_url}/ignition?mac={key}&token={token}" if token else "",
        events_url=f"{server_url}/api/v1/events?mac={key}&token={token}" if token else "",
        assets_url=f"{server_url}/assets",
        settings=settings,
        labels={"management": "true"} if management else {},
    )


def explain_render(
    options: Options,
    mac: str,
    installed: bool | None = None,
    role: str | None = None,
    platform: str = "efi",
    raw_json: bool = False,
) -> str:
    """`racker render`: which group a MAC matches and why, its iPXE script and Ignition —
    from the files and the store alone, no server and no PXE interface needed."""
    from racker.mirror.flatcar import current_version
    from racker.profiles import NodeFacts, explain, load_catalog, settings_from_config

    config = read_config(options)
    oem = read_rack_metadata(options, config, [])
    node = oem.inventory.by_mac(mac)
    csv_problems = [p for p in oem.problems if p.file.endswith("nodes.csv")]  # not credentials
    if node is None and csv_problems:
        raise InventoryError(csv_problems)
    try:
        plan: NetworkPlan | None = plan_addresses(config)  # offline: no interface needed
    except ConfigError:
        plan = None
    state_directory = state_dir(options, config)
    assets = config.http.assets_dir or state_directory / "assets"
    settings = settings_from_config(config, plan, current_version(assets, config.install.channel))
    address, stored = None, None
    if node is not None and (state_directory / DB_NAME).exists():
        with Store.open(state_directory) as store:
            allocation = store.allocations().get(node.primary_mac)
            address = str(allocation.address) if allocation else None
            stored = store.node_states().get(node.primary_mac)
    if installed is None:
        installed = stored is not None and stored.state in DISK_PHASES
    context = render_context(
        node=node,
        management=node is not None and node is oem.inventory.management,
        state=stored,
        installed=installed,
        address=address,
        server_url=f"http://{plan.server if plan else 'SERVER'}:{config.http.port}",
        settings=settings,
        role=role,
        token="TOKEN",  # noqa: S106 - a placeholder: render never shows a real token
    )
    catalog = load_catalog(config.http.profiles_dir, settings)
    facts = NodeFacts(mac=mac, platform=platform, buildarch="x86_64")
    return explain(catalog, facts, context, raw_json, ignition_problems)
