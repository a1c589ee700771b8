"""A tiny stand-in profile catalog for the web tests (the real one renders Flatcar profiles).

It follows the ``racker.profiles`` contract: ``render_ipxe`` returns an object with ``.text``,
unknown machines raise ``NoMatch``; the server tests stay independent of the Flatcar templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from racker.model import Node
from racker.profiles import NodeFacts, NoMatch, RenderContext

KNOWN_MAC = "52:54:00:aa:00:01"
OTHER_MAC = "52:54:00:aa:00:02"
UNKNOWN_MAC = "52:54:00:ff:ff:ff"

NODES = {
    mac: Node(
        line=i + 2,
        index=i + 1,
        primary_mac=mac,
        bmc_mac=f"52:54:00:bb:00:0{i}",
        secondary_mac=None,
        node_type="worker",
    )
    for i, mac in enumerate((KNOWN_MAC, OTHER_MAC))
}


@dataclass(frozen=True)
class StandinRendered:
    text: str


class StandinCatalog:
    """Renders a fixed Flatcar-like script from the context; unknown MACs do not match."""

    def __init__(self, ipxe_per_node: bool = False) -> None:
        self.calls: list[tuple[str, NodeFacts, RenderContext]] = []
        # None (ipxe_per_node): its scripts read nothing of the request but the MAC.
        self.ipxe_reads_request = None if ipxe_per_node else "the stand-in renders per request"

    def _check(self, kind: str, facts: NodeFacts, ctx: RenderContext) -> None:
        self.calls.append((kind, facts, ctx))
        if ctx.node is None:
            raise NoMatch("no group matches an unknown machine", "add it to nodes.csv")

    def render_ipxe(self, facts: NodeFacts, ctx: RenderContext) -> StandinRendered:
        self._check("ipxe", facts, ctx)
        return StandinRendered(
            "#!ipxe\n"
            f"kernel {ctx.assets_url}/flatcar_production_pxe.vmlinuz initrd=main "
            f"flatcar.first_boot=1 ignition.config.url={ctx.ignition_url}\n"
            f"initrd --name main {ctx.assets_url}/flatcar_production_pxe_image.cpio.gz\n"
            f"# phone home: {ctx.events_url}\n"
            "boot\n"
        )

    def render_ignition(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        self._check("ignition", facts, ctx)
        assert ctx.node is not None
        return {
            "ignition": {"version": "3.3.0"},
            "storage": {
                "files": [
                    {
                        "path": "/etc/hostname",
                        "contents": {"source": f"data:,{ctx.node.hostname}"},
                    }
                ]
            },
        }

    def render_metadata(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        self._check("metadata", facts, ctx)
        assert ctx.node is not None
        return {
            "hostname": ctx.node.hostname,
            "mac": facts.mac,
            "node": {"type": ctx.node.node_type, "index": ctx.node.index},
            "ssh_keys": ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"],
            "installed": ctx.installed,
        }


def context_for(facts: NodeFacts) -> RenderContext:
    """What the composition root does: inventory row and state, URLs left to the server."""
    node = NODES.get(facts.mac or "")
    return RenderContext(
        node=node,
        role="worker" if node else None,
        installed=False,
        address="10.99.0.64" if node else None,
        server_url="",
        ignition_url="",
        events_url="",
        assets_url="",
    )
