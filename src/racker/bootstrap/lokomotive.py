"""The Lokomotive cluster configuration (lokocfg, HCL) for a planned rack (layer 1: pure).

Lokomotive's bare-metal platform takes parallel lists of controller and worker names, MACs and
domains, and reaches its boot server over an HTTP endpoint. racker is that boot server, so the
endpoint is racker's own HTTP address. Storage nodes are workers with a ``storage`` label.
The output is checked as exact text in tests (golden file), like every other rendering.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from racker.bootstrap.plan import Plan, PlannedNode, Role

CONFIG_NAME = "cluster.lokocfg"


@dataclass(frozen=True)
class ClusterSettings:
    cluster_name: str
    http_endpoint: str  # racker's boot HTTP server, e.g. http://10.0.0.1:8080
    asset_dir: Path
    domain: str = "rack.local"  # node FQDN = hostname.domain; k8s API = cluster_name.domain
    ssh_pubkeys: Sequence[str] = field(default_factory=tuple)
    os_channel: str = "stable"
    os_version: str = "current"


def _q(value: str) -> str:
    # An HCL string literal: JSON escaping is a subset HCL accepts (quotes, backslashes, \n).
    return json.dumps(value)


def _list(values: Sequence[str], indent: str = "  ") -> str:
    if not values:
        return "[]"
    inner = "".join(f"{indent}  {_q(v)},\n" for v in values)
    return f"[\n{inner}{indent}]"


def render_lokocfg(plan: Plan, settings: ClusterSettings) -> str:
    controllers = plan.by_role(Role.CONTROLLER)
    workers = [p for p in plan.nodes if p.role in (Role.WORKER, Role.STORAGE)]
    storage = plan.by_role(Role.STORAGE)

    def names(nodes: Sequence[PlannedNode]) -> list[str]:
        return [p.name for p in nodes]

    def macs(nodes: Sequence[PlannedNode]) -> list[str]:
        return [p.node.primary_mac for p in nodes]

    def domains(nodes: Sequence[PlannedNode]) -> list[str]:
        return [f"{p.name}.{settings.domain}" for p in nodes]

    labels: Mapping[str, str] = {p.name: "storage.racker.io/node=true" for p in storage}
    label_lines = "".join(f"    {_q(k)} = {_q(v)}\n" for k, v in labels.items())
    return (
        "# Written by racker bootstrap --provision lokomotive. racker is the boot server.\n"
        f'cluster "bare-metal" {{\n'
        f"  asset_dir              = {_q(str(settings.asset_dir))}\n"
        f"  cluster_name           = {_q(settings.cluster_name)}\n"
        f"  k8s_domain_name        = {_q(settings.cluster_name + '.' + settings.domain)}\n"
        f"  matchbox_http_endpoint = {_q(settings.http_endpoint)}\n"
        f"  os_channel             = {_q(settings.os_channel)}\n"
        f"  os_version             = {_q(settings.os_version)}\n"
        f"  ssh_pubkeys            = {_list(list(settings.ssh_pubkeys))}\n"
        "\n"
        f"  controller_names   = {_list(names(controllers))}\n"
        f"  controller_macs    = {_list(macs(controllers))}\n"
        f"  controller_domains = {_list(domains(controllers))}\n"
        "\n"
        f"  worker_names   = {_list(names(workers))}\n"
        f"  worker_macs    = {_list(macs(workers))}\n"
        f"  worker_domains = {_list(domains(workers))}\n"
        + (f"\n  labels = {{\n{label_lines}  }}\n" if labels else "")
        + "}\n"
    )


def apply_command(config_dir: Path) -> list[str]:
    """The command that applies the configuration (run by racker, or printed for the operator)."""
    return ["lokoctl", "cluster", "apply", "--confirm", "--lokocfg", str(config_dir)]
