"""``racker render MAC``: which group matched and why, then what the node would get."""

from __future__ import annotations

import json

from racker.profiles.catalog import Catalog
from racker.profiles.context import NodeFacts, RenderContext
from racker.profiles.groups import NoMatch


def explain(catalog: Catalog, facts: NodeFacts, ctx: RenderContext) -> str:
    """Human-readable selection, iPXE script and Ignition (pretty JSON) for one machine.

    Raises ``NoMatch`` when no group matches and ``TemplateError`` when a template fails.
    """
    match = catalog.select(facts, ctx)
    node = ctx.node
    who = (
        f"{facts.mac} ({node.hostname}, type {node.node_type}"
        if node
        else f"{facts.mac} (not in inventory"
    )
    who += f", role {ctx.role}" if ctx.role else ""
    who += ", installed)" if ctx.installed else ")"
    lines = [f"# machine: {who}", f"# group: {match.group.id}", "# why:"]
    lines += [f"#   {reason}" for reason in match.why]
    if ctx.settings.flatcar_version == "current":
        lines.append(
            "# note: no Flatcar version in the asset mirror yet (install.version is current):"
            " run `racker assets fetch flatcar`"
        )
    if catalog.ipxe_reads_request is None:
        lines.append("# iPXE scripts: rendered ahead (they read nothing of a request but the MAC)")
    else:
        lines.append(f"# iPXE scripts: rendered on each request: {catalog.ipxe_reads_request}")
    ipxe, ignition = catalog.render_match(match, facts, ctx)
    lines += ["", "## iPXE script", ipxe.rstrip("\n"), "", "## Ignition"]
    if ignition is None:
        lines.append(f"(profile {match.profile.id!r} has no Ignition config)")
    else:
        lines.append(json.dumps(ignition, indent=2, sort_keys=True))
    return "\n".join(lines) + "\n"


__all__ = ["NoMatch", "explain"]
