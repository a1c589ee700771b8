"""Benchmark: ``racker bmc check`` logic over N simulated BMCs vs ipmitool, same BMCs, same run.

    .venv/bin/python bench/bmc.py [--bmcs 40] [--rounds 5]

Starts N OpenIPMI ``ipmi_sim`` BMCs on loopback addresses 127.0.8.10, .11, ... (UDP 623, so
root is needed; nothing leaves the machine), then times, per round:

- racker: ``racker.power.check.check_bmcs`` with the pyghmi ``IpmiDriver`` (power state, boot
  flags and Get Device ID of every BMC, all BMCs at once; one session per operation);
- ipmitool, all BMCs at once: one shell per BMC running ``chassis power status``, ``chassis
  bootparam get 5`` and ``mc info`` (``-I lanplus -C 3``, password via ``-E``);
- ipmitool, one BMC after the other (the same three commands), once;
- with ``--unpatched``, first racker again without its fix for pyghmi's lost wake-ups
  (``racker.power.pyghmi_client._patch_lost_wakeups``), to show what the fix is worth.

Goal: racker checks 40 BMCs in under 3 s. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.support.bmcsim import BmcSim, SimBmc  # noqa: E402

from racker.model import Node  # noqa: E402
from racker.power import pyghmi_client  # noqa: E402
from racker.power.base import BmcCredentials, BmcTarget  # noqa: E402
from racker.power.check import check_bmcs  # noqa: E402
from racker.power.console import ipmitool_command  # noqa: E402
from racker.power.ipmi import IpmiDriver  # noqa: E402

GOAL_SECONDS = 3.0
IPMITOOL_CHECK = (
    ("chassis", "power", "status"),
    ("chassis", "bootparam", "get", "5"),
    ("mc", "info"),
)


def targets(bmcs: list[SimBmc]) -> list[tuple[Node, BmcTarget]]:
    out = []
    for i, bmc in enumerate(bmcs, start=1):
        node = Node(i + 1, i, f"52:54:00:08:00:{i:02x}", f"52:54:00:08:01:{i:02x}", None, "bench")
        out.append(
            (node, BmcTarget(node.hostname, bmc.host, BmcCredentials(bmc.user, bmc.password)))
        )
    return out


async def racker_round(entries: list[tuple[Node, BmcTarget]]) -> tuple[float, int]:
    driver = IpmiDriver(timeout=10)
    try:
        start = time.monotonic()
        rows = await check_bmcs(driver, entries)  # type: ignore[arg-type]
        return time.monotonic() - start, sum(r.ok for r in rows)
    finally:
        await driver.close()


def ipmitool_script(bmc: SimBmc) -> tuple[str, dict[str, str]]:
    lines = []
    env: dict[str, str] = {}
    target = BmcTarget(bmc.name, bmc.host, BmcCredentials(bmc.user, bmc.password))
    for args in IPMITOOL_CHECK:
        argv, env = ipmitool_command(target, *args)
        lines.append(" ".join(argv) + " >/dev/null")
    return " && ".join(lines), env


def ipmitool_parallel(bmcs: list[SimBmc]) -> tuple[float, int]:
    start = time.monotonic()
    procs = []
    for bmc in bmcs:
        script, env = ipmitool_script(bmc)
        procs.append(subprocess.Popen(["sh", "-c", script], env={**os.environ, **env}))
    ok = sum(p.wait(60) == 0 for p in procs)
    return time.monotonic() - start, ok


def ipmitool_serial(bmcs: list[SimBmc]) -> tuple[float, int]:
    start = time.monotonic()
    ok = 0
    for bmc in bmcs:
        script, env = ipmitool_script(bmc)
        ok += (
            subprocess.run(["sh", "-c", script], env={**os.environ, **env}, check=False).returncode
            == 0
        )
    return time.monotonic() - start, ok


def describe(times: list[float]) -> tuple[str, str, str]:
    return (
        f"{statistics.median(times):.2f}",
        f"{min(times):.2f}-{max(times):.2f}",
        ", ".join(f"{t:.2f}" for t in times),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bmcs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unpatched", action="store_true", help="also time unpatched pyghmi")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/bmc.py needs root (BMCs listen on UDP port 623)")
    for tool in ("ipmi_sim", "ipmitool"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install openipmi ipmitool)")
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-bmc-") as tmp,
        BmcSim(Path(tmp), first="127.0.8.10") as sim,
    ):
        bmcs = sim.start(args.bmcs)
        entries = targets(bmcs)
        unpatched_times: list[float] = []
        unpatched_ok = 0
        if args.unpatched:
            pyghmi_client._patched = True  # pretend it is done: pyghmi stays as shipped
            for _ in range(args.rounds):
                seconds, unpatched_ok = asyncio.run(racker_round(entries))
                unpatched_times.append(seconds)
            pyghmi_client._patched = False  # the next session applies the fix
        racker_times, tool_times = [], []
        racker_ok = tool_ok = 0
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            seconds, racker_ok = asyncio.run(racker_round(entries))
            racker_times.append(seconds)
            seconds, tool_ok = ipmitool_parallel(bmcs)
            tool_times.append(seconds)
        serial_time, serial_ok = ipmitool_serial(bmcs)
    load = os.getloadavg()[0]
    n = args.bmcs
    print(f"{n} ipmi_sim BMCs, {args.rounds} rounds, load average {load:.1f}\n")
    print("| client | BMCs fine | seconds (median) | range | rounds (s) |")
    print("|---|---:|---:|---|---|")
    med, rng, runs = describe(racker_times)
    print(f"| racker bmc check (pyghmi, all at once) | {racker_ok}/{n} | {med} | {rng} | {runs} |")
    if unpatched_times:
        med, rng, runs = describe(unpatched_times)
        label = "racker, pyghmi's lost wake-ups not fixed"
        print(f"| {label} | {unpatched_ok}/{n} | {med} | {rng} | {runs} |")
    med, rng, runs = describe(tool_times)
    print(f"| ipmitool -C 3, all at once ({n} shells) | {tool_ok}/{n} | {med} | {rng} | {runs} |")
    print(f"| ipmitool -C 3, one BMC after another | {serial_ok}/{n} | {serial_time:.2f} | - | 1 |")
    best = statistics.median(racker_times)
    verdict = "met" if best < GOAL_SECONDS and racker_ok == n else "MISSED"
    print(f"\nGoal: {n} BMCs checked in < {GOAL_SECONDS:g} s: {verdict} (median {best:.2f} s)")


if __name__ == "__main__":
    main()
