"""Bootstrap benchmark: N simulated nodes provisioned by ``racker bootstrap``, in one run.

    .venv/bin/python bench/bootstrap.py [--nodes 100] [--parallel 0] [--stagger 0]

Builds the simulated rack of the integration tests (tests/support/simrack.py: one namespace and
one firmware+installer process per node on a shared bridge, fake BMCs that start the node
processes) and runs the real ``racker bootstrap`` in the server namespace with ``--json``.

Reports the total wall time and racker's own overhead per node, two ways:

- CPU: racker's own process CPU time (user + system, ``getrusage(RUSAGE_SELF)`` at its exit,
  start-up and imports included) divided by the node count. Node processes are started by the
  simulated rack's launcher in this process, never by racker.
- latency: the time each node spent in the phases where racker, not the node, has to act
  (``pending``, ``bmc-ok``, ``pxe-armed``, ``installed``: BMC calls, which the in-process fake
  answers at once, and racker's own scheduling), from the run's state-change events.

There is no reference orchestrator to run beside racker; the comparison point is the nodes' own
time (power-on to ``ready``), printed in the same table. Prints markdown; needs root.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.support.simrack import SimRack  # noqa: E402

ACTION_PHASES = {"pending", "bmc-ok", "pxe-armed", "installed"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=0)
    parser.add_argument("--stagger", type=float, default=0.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="racker-bench-") as tmp:
        directory = Path(tmp)
        setup = time.monotonic()
        with SimRack(directory / "rack", args.nodes) as rack:
            setup = time.monotonic() - setup
            out_path = directory / "events.jsonl"
            with open(out_path, "w") as out:
                started = time.monotonic()
                proc = rack.racker(
                    [
                        "bootstrap",
                        "--json",
                        "--on-failure",
                        "exclude",
                        "--retries",
                        "2",
                        "--parallel",
                        str(args.parallel),
                        "--stagger",
                        str(args.stagger),
                    ],
                    stdout=out,
                    stderr=open(directory / "stderr.log", "w"),  # noqa: SIM115
                )
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.monotonic() - started
            code = os.waitstatus_to_exitcode(status)
            own = json.loads((directory / "rack" / "racker-rusage.json").read_text())
            events = [json.loads(line) for line in out_path.read_text().splitlines() if line]
            states = rack.node_states()

    changes: dict[str, list[tuple[float, str]]] = {}
    for e in events:
        if e.get("source") == "bootstrap" and e.get("kind") == "transition":
            changes.setdefault(e["node"], []).append((e["ts"], e["new"]))
    racker_side, node_total = [], []
    for seq in changes.values():
        seq.sort()
        spent = sum(b[0] - a[0] for a, b in itertools.pairwise(seq) if a[1] in ACTION_PHASES)
        racker_side.append(spent)
        powered = next((ts for ts, new in seq if new == "power-cycled"), None)
        ready = next((ts for ts, new in seq if new == "ready"), None)
        if powered is not None and ready is not None:
            node_total.append(ready - powered)
    cpu = own["user"] + own["system"]
    cpu_tree = usage.ru_utime + usage.ru_stime
    ready_count = sum(1 for s in states.values() if s["state"] == "ready")
    n = args.nodes

    print(
        f"racker bootstrap, {n} simulated nodes (parallel {args.parallel or 'all'}, "
        f"stagger {args.stagger:g} s); exit code {code}; namespaces set up in {setup:.1f} s\n"
    )
    print("| metric | value |")
    print("|---|---|")
    print(f"| nodes ready | {ready_count}/{n} |")
    print(f"| total wall time | {wall:.1f} s |")
    print(f"| racker CPU (user+sys), total | {cpu:.2f} s |")
    print(f"| racker CPU per node | {cpu / n * 1000:.1f} ms |")
    print(f"| CPU of racker and the processes it reaped | {cpu_tree:.2f} s |")
    print(
        f"| racker-side latency per node (median / p95) | "
        f"{statistics.median(racker_side) * 1000:.0f} / {pct(racker_side, 0.95) * 1000:.0f} ms |"
    )
    if node_total:
        print(
            f"| node time, power-on to ready (median / p95) | "
            f"{statistics.median(node_total):.1f} / {pct(node_total, 0.95):.1f} s |"
        )
    print(f"| events in the --json stream | {len(events)} |")


if __name__ == "__main__":
    main()
