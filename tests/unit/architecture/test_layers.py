"""The architecture of ../shared/STYLE.md, kept true: a lower layer never imports a higher one.

Every module of src/racker must match a pattern below; a new module that matches none fails
this test until it is given a layer, so the picture stays the real picture.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[3] / "src"

LAYERS: list[tuple[int, list[str]]] = [
    (
        0,
        [
            "racker",
            "racker.errors",
            "racker.model",
            "racker.events",
            "racker.logbudget",
            "racker.dhcp",
            "racker.dhcp.options",
            "racker.tftp",
        ],
    ),
    (
        1,
        [
            "racker.rack",
            "racker.rack.config",
            "racker.rack.inventory",
            "racker.rack.allocation",
            "racker.rack.addressing",
            "racker.rack.networkd",
            "racker.web.tokens",
            # In dhcp/ and tftp/ everything but the server module is the pure protocol core.
            "racker.dhcp.*",
            "racker.tftp.*",
            "racker.profiles",
            "racker.profiles.*",
            "racker.bootstrap.machine",
            "racker.bootstrap.plan",
            "racker.bootstrap.lokomotive",
            "racker.release.index",
        ],
    ),
    (
        2,
        [
            "racker.store",
            "racker.store_writer",
            "racker.download",
            "racker.ignition_validate",
            "racker.rack.interfaces",
            "racker.rack.oem",
            "racker.rack.loading",
            "racker.rack.report",
            "racker.mirror",
            "racker.mirror.*",
            "racker.tftp.files",
            "racker.power",
            "racker.power.*",
            "racker.release",
            "racker.release.*",
        ],
    ),
    (
        3,
        [
            "racker.dhcp.server",
            "racker.dhcp.sockets",  # the DHCP server's sockets (packet, relay, BPF), set up
            "racker.dhcp.commits",  # the DHCP server's group commit of leases (asyncio, futures)
            "racker.dhcp.rogue_watch",  # the passive rogue-DHCP watcher's packet socket
            "racker.dhcp.probe",  # racker factory check --probe: scapy on a packet socket
            "racker.ra",
            "racker.ra.*",
            "racker.tftp.server",
            "racker.tftp.session",  # one transfer's socket and timer, used by tftp.server
            "racker.tftp.shared",  # all transfers on one port, used by tftp.server
            "racker.web",
            "racker.web.*",
        ],
    ),
    (4, ["racker.bootstrap", "racker.bootstrap.*"]),
    (
        5,
        [
            "racker.app",
            "racker.app.*",
            "racker.sim",
            "racker.sim.*",
            # racker selftest: clients (scapy, tftpy, urllib) composed against racker serve
            "racker.selftest",
            "racker.selftest.*",
        ],
    ),
    (6, ["racker.cli", "racker.cli.*"]),
]

# Third-party or I/O modules a pure core (layers 0 and 1) must not touch.
IO_MODULES = {
    "asyncio",
    "socket",
    "subprocess",
    "aiohttp",
    "click",
    "pyghmi",
    "scapy",
    "sqlite3",
    "threading",
    "selectors",
    "rich",
}
PURE_ALLOWED_THIRD_PARTY = {"yaml", "jinja2"}


# Orchestration (layer 4) sees power drivers and the store only through their interfaces
# (racker.power.base, racker.bootstrap.storage's Protocols): the composition root hands it the
# concrete driver and the SQLite store. Terminal output is the CLI's.
POWER_INTERFACE = {"racker.power", "racker.power.base"}
ORCHESTRATION_FORBIDDEN_THIRD_PARTY = {"rich", "sqlite3", "pyghmi", "sushy"}


def orchestration_violations(imports: set[str]) -> list[str]:
    bad = []
    for name in sorted(imports):
        if name.startswith("racker.power") and name not in POWER_INTERFACE:
            bad.append(f"{name} (a concrete power module: take a PowerDriver instead)")
        elif name == "racker.store" or name.startswith("racker.store."):
            bad.append(f"{name} (take racker.bootstrap.storage's Protocols instead)")
        elif name.split(".")[0] in ORCHESTRATION_FORBIDDEN_THIRD_PARTY:
            bad.append(name)
    return bad


def layer_of(module: str) -> int | None:
    # Exact names win over patterns; among patterns, the first listed wins.
    for layer, patterns in LAYERS:
        if module in patterns:
            return layer
    for layer, patterns in LAYERS:
        if any(fnmatch.fnmatchcase(module, p) for p in patterns if "*" in p):
            return layer
    return None


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "racker").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            # "from racker.dhcp import server" imports the submodule racker.dhcp.server
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if candidate in MODULES:
                    names.add(candidate)
    return names


MODULES = modules()


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, f"give these modules a layer in {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = layer_of(module)
    if own is None:
        pytest.fail(f"{module} has no layer")
    for name in sorted(imports_of(module, MODULES[module])):
        if name.startswith("racker"):
            target = name if name in MODULES else name.rpartition(".")[0]
            other = layer_of(target)
            assert other is not None, f"{module} imports unknown racker module {name}"
            assert other <= own, f"{module} (L{own}) imports {name} (L{other})"
        elif own <= 1:
            top = name.split(".")[0]
            assert top not in IO_MODULES, f"pure module {module} (L{own}) imports {name}"
            assert (
                top in sys.stdlib_module_names
                or top in PURE_ALLOWED_THIRD_PARTY
                or top == "__future__"
            ), f"pure module {module} (L{own}) imports third-party {name}"
        if own == 0 and not name.startswith("racker"):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"layer-0 module {module} imports {name}: stdlib only"
            )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == 4))
def test_orchestration_sees_interfaces_only(module: str) -> None:
    bad = orchestration_violations(imports_of(module, MODULES[module]))
    assert not bad, f"{module} imports {bad}"


def test_orchestration_check_can_fail() -> None:
    assert orchestration_violations({"racker.power.ipmi", "racker.store", "rich.table"}) == [
        "racker.power.ipmi (a concrete power module: take a PowerDriver instead)",
        "racker.store (take racker.bootstrap.storage's Protocols instead)",
        "rich.table",
    ]
    assert orchestration_violations({"racker.power.base", "racker.bootstrap.storage"}) == []


def test_the_check_can_fail() -> None:
    """A deliberately wrong import is caught (guards against a vacuous layer test)."""
    assert layer_of("racker.dhcp.core") == 1
    assert layer_of("racker.dhcp.server") == 3
    assert layer_of("racker.cli") == 6
    assert layer_of("racker.nonexistent_thing") is None
