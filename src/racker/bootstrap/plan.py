"""What ``racker bootstrap`` will do, decided before anything is powered (layer 1: pure).

Input: the inventory's provisionable nodes (already narrowed by ``--nodes``/``--exclude``, which
the caller resolves) and the flags. Output: a ``Plan`` with one role per node, or a
``PlanError`` that says what is impossible and how to fix it. ``--provision flatcar`` gives every
node the role ``flatcar``; ``--provision lokomotive`` picks controllers (and storage nodes) by
type, in nodes.csv order, and makes every other node a worker.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from racker.errors import RackerError
from racker.model import Node


class PlanError(RackerError):
    """The requested plan cannot work with this rack; nothing has been touched."""

    exit_code = 2


class Provision(enum.StrEnum):
    FLATCAR = "flatcar"
    LOKOMOTIVE = "lokomotive"


class Role(enum.StrEnum):
    FLATCAR = "flatcar"  # Flatcar only, no Kubernetes role
    CONTROLLER = "controller"
    WORKER = "worker"
    STORAGE = "storage"  # a worker dedicated to storage (labelled and tainted)


@dataclass(frozen=True)
class PlannedNode:
    node: Node
    role: Role

    @property
    def name(self) -> str:
        return self.node.hostname


@dataclass(frozen=True)
class PlanRequest:
    provision: Provision = Provision.FLATCAR
    controllers: int = 1
    controller_type: str | None = None
    storage_type: str | None = None
    storage_count: int = 0
    reprovision: bool = False


@dataclass(frozen=True)
class Plan:
    provision: Provision
    nodes: tuple[PlannedNode, ...]
    reprovision: bool = False

    def by_role(self, role: Role) -> list[PlannedNode]:
        return [p for p in self.nodes if p.role is role]

    def describe(self) -> list[str]:
        """The plan as lines for ``--dry-run`` and the start of a run."""
        lines = [f"provision {self.provision} on {len(self.nodes)} node(s)"]
        if self.reprovision:
            lines.append("reprovision: installed nodes are installed again")
        width = max((len(p.name) for p in self.nodes), default=4)
        for p in self.nodes:
            lines.append(
                f"  {p.name:<{width}}  {p.role:<10}  {p.node.node_type:<12}  {p.node.primary_mac}"
            )
        return lines


def _types(nodes: Sequence[Node]) -> str:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.node_type] = counts.get(node.node_type, 0) + 1
    return ", ".join(f"{t} ({n})" for t, n in sorted(counts.items())) or "none"


def make_plan(nodes: Sequence[Node], request: PlanRequest) -> Plan:
    """Assign roles to ``nodes`` (in order); raise ``PlanError`` for an impossible request."""
    if not nodes:
        raise PlanError(
            "no nodes selected", "check --nodes/--exclude; the management node is never provisioned"
        )
    if request.provision is Provision.FLATCAR:
        extra = [
            flag
            for flag, given in (
                ("--controller-type", request.controller_type),
                ("--storage-type", request.storage_type),
                ("--storage-count", request.storage_count),
            )
            if given
        ]
        if extra:
            raise PlanError(
                f"{', '.join(extra)} only apply to --provision lokomotive",
                "drop them, or pass --provision lokomotive",
            )
        return Plan(
            request.provision,
            tuple(PlannedNode(n, Role.FLATCAR) for n in nodes),
            request.reprovision,
        )
    return Plan(request.provision, _lokomotive_roles(nodes, request), request.reprovision)


def _lokomotive_roles(nodes: Sequence[Node], request: PlanRequest) -> tuple[PlannedNode, ...]:
    if request.controllers not in (1, 3):
        raise PlanError(
            f"--controllers {request.controllers}: etcd needs 1 or 3 controllers",
            "pass --controllers 1 or --controllers 3",
        )
    types = {n.node_type for n in nodes}
    controller_type = request.controller_type
    if controller_type is None:
        if len(types) != 1:
            raise PlanError(
                "which node type runs the controllers?",
                f"pass --controller-type TYPE; selected types: {_types(nodes)}",
            )
        controller_type = next(iter(types))
    candidates = [n for n in nodes if n.node_type == controller_type]
    if len(candidates) < request.controllers:
        raise PlanError(
            f"{request.controllers} controllers of type {controller_type!r} wanted, but the "
            f"selection has {len(candidates)} such node(s)",
            f"use --controllers 1 or another --controller-type; selected types: {_types(nodes)}",
        )
    controllers = candidates[: request.controllers]
    storage: list[Node] = []
    if request.storage_type is not None or request.storage_count:
        if request.storage_type is None or request.storage_count < 1:
            raise PlanError(
                "--storage-type and --storage-count go together",
                "pass both, e.g. --storage-type disk-heavy --storage-count 3",
            )
        free = [n for n in nodes if n.node_type == request.storage_type and n not in controllers]
        if len(free) < request.storage_count:
            raise PlanError(
                f"{request.storage_count} storage nodes of type {request.storage_type!r} wanted, "
                f"but only {len(free)} such node(s) are selected and not controllers",
                f"lower --storage-count; selected types: {_types(nodes)}",
            )
        storage = free[: request.storage_count]
    out = []
    for node in nodes:
        if node in controllers:
            role = Role.CONTROLLER
        elif node in storage:
            role = Role.STORAGE
        else:
            role = Role.WORKER
        out.append(PlannedNode(node, role))
    return tuple(out)
