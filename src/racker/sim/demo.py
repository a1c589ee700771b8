"""``racker demo``: a simulated rack provisioned by racker, end to end, then torn down.

Steps: ``sim up`` (3 nodes, mixed firmware), ``racker bootstrap`` inside the sim's management
namespace (it runs the boot stack in-process and shows the live progress view on the
terminal), ``racker status``, ``sim down``. racker runs as a child process inside the namespace
(``ip netns exec``) exactly as an operator would run it on a management node; the demo only
composes commands, so what it shows is what racker does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from racker.sim.rack import namespaces, sim_down, sim_up
from racker.sim.spec import DEFAULT_ROOT, SimSpec, plan_sim

Echo = Callable[[str], None]


def racker_argv(spec: SimSpec, *args: str, python: str = sys.executable) -> list[str]:
    """racker, run inside the sim's management namespace with the sim's racker.yaml."""
    return [
        "ip",
        "netns",
        "exec",
        spec.mgmt_ns,
        python,
        "-c",
        "from racker.cli import main; main()",
        "--config",
        str(spec.config_path),
        *args,
    ]


def run_demo(
    echo: Echo,
    nodes: int = 3,
    firmware: str = "mixed",
    name: str = "demo",
    root: Path = DEFAULT_ROOT,
    keep: bool = False,
    guest_cache: Path | None = None,
) -> int:
    """Run the demo; returns bootstrap's exit code (0: every node ready)."""
    spec = plan_sim(name, nodes, firmware, root=root)
    if (root / name).exists() or {spec.mgmt_ns, spec.rack_ns} & namespaces():
        echo(f"== removing the sim left over by an interrupted demo ({name})")
        sim_down(name, root)
    echo(f"== racker sim up: {nodes} node(s), firmware {firmware} (QEMU + ipmi_sim, no KVM)")
    sim_up(spec, guest_cache=guest_cache)
    code = 1
    try:
        for node in spec.nodes:
            echo(f"   {node.hostname}  {node.mac}  {node.firmware:9}  BMC {node.bmc_host}:623")
        echo("== racker bootstrap (boot stack + BMCs; TCG emulation: a few minutes)")
        bootstrap = racker_argv(spec, "bootstrap", "--on-failure", "exclude", "--stagger", "1")
        code = subprocess.run(bootstrap, check=False).returncode
        echo("== racker status")
        subprocess.run(racker_argv(spec, "status"), check=False)
        if code == 0:
            echo("== every node is ready: installed by racker, booted from its disk")
        else:
            logs = spec.root / "node*" / "serial.log"
            echo(f"== racker bootstrap exited with {code}; serial consoles: {logs}")
    finally:
        if keep:
            echo(f"== kept: racker sim down --name {name} removes it")
        else:
            echo("== racker sim down")
            sim_down(name, root)
    return code
