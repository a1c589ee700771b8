"""`racker factory check`: the rack vendor's pre-shipment report (layer 5, beside app).

Each check is a line with ✓ or ✗ and, for ✗, every problem with its file/line and hint.
``offline`` skips what depends on this machine (local MACs, the PXE interface), for checking
a rack's files anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from racker.errors import ConfigError, Problem
from racker.model import Inventory, NetworkPlan
from racker.rack.addressing import plan_addresses
from racker.rack.interfaces import LocalInterface, local_interfaces
from racker.rack.loading import Options, find_pxe_interface, read_config, read_rack_metadata
from racker.rack.oem import NODES_CSV, OemData


@dataclass(frozen=True)
class Check:
    ok: bool
    title: str
    problems: tuple[Problem, ...] = ()
    details: tuple[str, ...] = ()


@dataclass
class FactoryReport:
    checks: list[Check] = field(default_factory=list)
    inventory: Inventory | None = None
    interface: LocalInterface | None = None
    plan: NetworkPlan | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        inv = self.inventory
        return {
            "ok": self.ok,
            "checks": [
                {
                    "ok": c.ok,
                    "title": c.title,
                    "details": list(c.details),
                    "problems": [
                        {"file": p.file, "line": p.line, "message": p.message, "hint": p.hint}
                        for p in c.problems
                    ],
                }
                for c in self.checks
            ],
            "management": inv.management.primary_mac if inv and inv.management else None,
            "interface": self.interface.name if self.interface else None,
            "node_types": inv.types() if inv else {},
        }


def factory_check(options: Options, offline: bool = False) -> FactoryReport:
    report = FactoryReport()
    try:
        config = read_config(options)
        report.checks.append(Check(True, "configuration is valid"))
    except ConfigError as exc:
        report.checks.append(Check(False, "configuration", tuple(exc.problems)))
        return report
    interfaces = [] if offline else local_interfaces()
    oem = read_rack_metadata(options, config, interfaces)
    report.inventory = oem.inventory
    _inventory_checks(report, oem, offline)
    if offline:
        return report
    pxe, problem = find_pxe_interface(options, config, oem, interfaces)
    if pxe is None:
        assert problem is not None
        report.checks.append(Check(False, "PXE interface", (problem,)))
        return report
    interface = report.interface = pxe.interface
    report.checks.append(
        Check(True, f"PXE interface {interface.name} ({interface.mac}): {pxe.how}")
    )
    try:
        plan = plan_addresses(config, interface.ipv4)
    except ConfigError as exc:
        report.checks.append(Check(False, "PXE interface address", tuple(exc.problems)))
        return report
    report.plan = plan
    own = f"{plan.server}/{plan.subnet.prefixlen}"
    if interface.ipv4:
        has = ", ".join(str(a) for a in interface.ipv4)
        report.checks.append(Check(True, f"PXE interface address: {has}; racker serves as {own}"))
    else:
        report.checks.append(
            Check(True, f"PXE interface address: none yet; racker serve will add {own}")
        )
    nodes = len(oem.inventory.nodes)
    fits = nodes <= len(plan.nodes) and nodes <= len(plan.bmcs)
    title = f"address plan: {nodes} nodes in {plan.nodes}, BMCs in {plan.bmcs}"
    problems: tuple[Problem, ...] = ()
    if not fits:
        problems = (
            Problem(
                "racker.yaml",
                None,
                f"{nodes} rows do not fit the node/BMC ranges",
                "widen network.nodes / network.bmcs",
            ),
        )
    report.checks.append(Check(fits, title, problems))
    return report


def _inventory_checks(report: FactoryReport, oem: OemData, offline: bool) -> None:
    inv = oem.inventory
    csv_name = str(oem.directory / NODES_CSV)
    by_file: dict[str, list[Problem]] = {}
    for problem in oem.problems:
        by_file.setdefault(problem.file, []).append(problem)
    csv_problems = [
        p for p in by_file.get(csv_name, []) if not p.message.startswith("no row is the management")
    ]
    columns = 5 if oem.has_secondary else 4
    if (oem.directory / NODES_CSV).is_file():
        title = f"{csv_name}: {len(inv.nodes)} rows, {columns}-column format"
    else:
        title = f"{csv_name}: missing"
    report.checks.append(Check(not csv_problems, title, tuple(csv_problems)))
    cred_problems = [p for f, ps in by_file.items() if f != csv_name for p in ps]
    cred_problems = [p for p in cred_problems if "pxe_interface" not in p.file]
    report.checks.append(
        Check(not cred_problems, "BMC credentials (ipmi_user, ipmi_password)", tuple(cred_problems))
    )
    pxe_problems = [p for f, ps in by_file.items() if "pxe_interface" in f for p in ps]
    if pxe_problems:
        report.checks.append(Check(False, "pxe_interface", tuple(pxe_problems)))
    if inv.management is not None:
        m = inv.management
        report.checks.append(
            Check(True, f"management node: line {m.line}, {m.primary_mac} ({m.hostname})")
        )
    elif not offline and inv.nodes:
        missing = [p for p in by_file.get(csv_name, []) if p not in csv_problems]
        report.checks.append(Check(False, "management node", tuple(missing)))
    types = ", ".join(f"{t}: {n}" for t, n in sorted(inv.types().items())) or "none"
    report.checks.append(Check(True, f"nodes to provision by type: {types}"))
