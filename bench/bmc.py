"""Benchmark: ``racker bmc check`` over N emulated BMCs, IPMI and Redfish, in the same run.

    .venv/bin/python bench/bmc.py [--bmcs 40] [--rounds 5] [--protocols ipmi,redfish]
                                  [--unpatched] [--sessions] [--http]

IPMI (root: the BMCs listen on UDP 623; needs openipmi and ipmitool): N OpenIPMI ``ipmi_sim``
BMCs on loopback addresses 127.0.8.10, .11, ...; timed per round:

- racker: ``racker.power.check.check_bmcs`` with the pyghmi ``IpmiDriver`` (power state, boot
  flags and Get Device ID of every BMC, all BMCs at once; one session per operation);
- ipmitool, all BMCs at once: one shell per BMC running ``chassis power status``, ``chassis
  bootparam get 5`` and ``mc info`` (``-I lanplus -C 3``, password via ``-E``);
- ipmitool, one BMC after the other (the same three commands), once;
- with ``--unpatched``, first racker again without its fix for pyghmi's lost wake-ups
  (``racker.power.pyghmi_client._patch_lost_wakeups``), to show what the fix is worth.

Redfish (needs sushy-tools and apache2-utils' htpasswd): N sushy-tools emulators
(``sushy-emulator --fake``, one process each, ``tests/support/redfish.py``) on 127.0.0.1 and
free ports, HTTPS with a self-signed certificate that racker verifies (``bmc.verify_tls``: the
certificate as CA bundle; ``--http``: plain HTTP), Basic auth from an htpasswd file
(``--sessions``: a SessionService in front, as iDRAC and iLO have); timed per round:

- racker: ``check_bmcs`` with a fresh ``RedfishDriver`` (what one ``racker bmc check`` does:
  log in to every BMC, GET the system (power, boot override), the manager (firmware); log out);
- racker with ``bmc.driver: auto`` and no memory yet: the probe of each BMC's service root first.

Rounds alternate between the clients, so all see the same machine load. Goal: 40 BMCs checked
in under 3 s, per protocol. Prints markdown tables and one machine-readable line per client:
``BENCH bmc protocol=... client=... bmcs=N fine=N median_s=... min_s=... max_s=... rounds=...``.
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
# In place of this script's directory: bench/http.py would shadow the standard library's http
# package, which requests (under sushy) imports.
sys.path[:1] = [str(REPO), str(REPO / "src")]

from tests.support.bmcsim import BmcSim, SimBmc  # noqa: E402
from tests.support.redfish import RedfishBmc, RedfishLab  # noqa: E402
from tests.support.redfish import available as redfish_available  # noqa: E402

from racker.model import Node  # noqa: E402
from racker.power import pyghmi_client  # noqa: E402
from racker.power.auto import AutoDriver  # noqa: E402
from racker.power.base import BmcCredentials, BmcTarget, PowerDriver  # noqa: E402
from racker.power.check import check_bmcs  # noqa: E402
from racker.power.console import ipmitool_command  # noqa: E402
from racker.power.ipmi import IpmiDriver  # noqa: E402
from racker.power.redfish import RedfishDriver  # noqa: E402

GOAL_SECONDS = 3.0
IPMITOOL_CHECK = (
    ("chassis", "power", "status"),
    ("chassis", "bootparam", "get", "5"),
    ("mc", "info"),
)


def targets(bmcs: list[SimBmc]) -> list[tuple[Node, BmcTarget]]:
    out = []
    for i, bmc in enumerate(bmcs, start=1):
        n = node(i)
        out.append((n, BmcTarget(n.hostname, bmc.host, BmcCredentials(bmc.user, bmc.password))))
    return out


def node(i: int) -> Node:
    return Node(i + 1, i, f"52:54:00:08:00:{i:02x}", f"52:54:00:08:01:{i:02x}", None, "bench")


def redfish_targets(bmcs: list[RedfishBmc], url: bool) -> list[tuple[Node, BmcTarget]]:
    """As bmc.addresses gives them: a URL (``url``), else host:port for auto to probe."""
    out = []
    for i, bmc in enumerate(bmcs, start=1):
        creds = BmcCredentials(bmc.user, bmc.password)
        scheme = bmc.scheme if url else None
        out.append((node(i), BmcTarget(f"rf{i}", bmc.host, creds, bmc.port, scheme=scheme)))
    return out


async def racker_round(
    entries: list[tuple[Node, BmcTarget]], make: type[PowerDriver] | None = None, **kw: object
) -> tuple[float, int]:
    """One ``racker bmc check``: a fresh driver, every BMC at once, the driver closed."""
    driver = IpmiDriver(timeout=10) if make is None else make(**kw)
    start = time.monotonic()
    try:
        rows = await check_bmcs(driver, entries)  # type: ignore[arg-type]
    finally:
        await driver.close()
    return time.monotonic() - start, sum(r.ok for r in rows)


def auto_driver(verify: bool | Path) -> AutoDriver:
    return AutoDriver(
        RedfishDriver(timeout=10, verify_tls=verify),
        IpmiDriver(timeout=10),
        None,
        timeout=10,
        verify_tls=verify,
    )


async def auto_round(
    entries: list[tuple[Node, BmcTarget]], verify: bool | Path
) -> tuple[float, int]:
    driver = auto_driver(verify)
    start = time.monotonic()
    try:
        rows = await check_bmcs(driver, entries)  # type: ignore[arg-type]
    finally:
        await driver.close()
    return time.monotonic() - start, sum(r.ok and r.protocol == "redfish" for r in rows)


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


class Results:
    """Times per client, printed as a table and as machine-readable lines."""

    def __init__(self, bmcs: int) -> None:
        self.bmcs = bmcs
        # protocol, key (machine-readable), client (for people), times, BMCs fine
        self.rows: list[tuple[str, str, str, list[float], int]] = []

    def add(self, protocol: str, key: str, client: str, times: list[float], fine: int) -> None:
        self.rows.append((protocol, key, client, times, fine))

    def print(self) -> None:
        n = self.bmcs
        print("| protocol | client | BMCs fine | seconds (median) | range | rounds (s) |")
        print("|---|---|---:|---:|---|---|")
        for protocol, _key, client, times, fine in self.rows:
            med, rng, runs = describe(times)
            print(f"| {protocol} | {client} | {fine}/{n} | {med} | {rng} | {runs} |")
        print()
        for protocol, key, _client, times, fine in self.rows:
            print(
                f"BENCH bmc protocol={protocol} client={key} bmcs={n} fine={fine} "
                f"median_s={statistics.median(times):.3f} min_s={min(times):.3f} "
                f"max_s={max(times):.3f} rounds={len(times)}"
            )
        print()
        for protocol, key, _client, times, fine in self.rows:
            if key == "racker":
                best = statistics.median(times)
                verdict = "met" if best < GOAL_SECONDS and fine == n else "MISSED"
                print(
                    f"Goal ({protocol}): {n} BMCs checked in < {GOAL_SECONDS:g} s: {verdict} "
                    f"(median {best:.2f} s)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bmcs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--protocols", default="ipmi,redfish", help="ipmi, redfish or both")
    parser.add_argument("--unpatched", action="store_true", help="also time unpatched pyghmi")
    parser.add_argument("--sessions", action="store_true", help="Redfish BMCs with sessions")
    parser.add_argument("--http", action="store_true", help="Redfish over plain HTTP")
    args = parser.parse_args()
    protocols = set(args.protocols.split(","))
    if "ipmi" in protocols:
        if os.geteuid() != 0:
            sys.exit("bench/bmc.py needs root for IPMI (BMCs listen on UDP port 623)")
        for tool in ("ipmi_sim", "ipmitool"):
            if shutil.which(tool) is None:
                sys.exit(f"{tool} is not installed (apt-get install openipmi ipmitool)")
    if "redfish" in protocols and redfish_available():
        sys.exit(str(redfish_available()))
    n = args.bmcs
    results = Results(n)
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-bmc-") as tmp,
        BmcSim(Path(tmp) / "ipmi", first="127.0.8.10") as sim,
        RedfishLab(Path(tmp) / "redfish", tls=not args.http) as lab,
    ):
        notes = []
        ipmi_bmcs = sim.start(n) if "ipmi" in protocols else []
        redfish_bmcs: list[RedfishBmc] = []
        if "redfish" in protocols:
            started = time.monotonic()
            redfish_bmcs = lab.start_many(n, sessions=args.sessions)
            notes.append(f"{n} Redfish emulators started in {time.monotonic() - started:.1f} s")
        entries = targets(ipmi_bmcs)
        urls = redfish_targets(redfish_bmcs, url=True)
        probed = redfish_targets(redfish_bmcs, url=False)
        verify: bool | Path = False if args.http else lab.ca
        if args.unpatched and ipmi_bmcs:
            times, fine = [], 0
            pyghmi_client._patched = True  # pretend it is done: pyghmi stays as shipped
            for _ in range(args.rounds):
                seconds, fine = asyncio.run(racker_round(entries))
                times.append(seconds)
            pyghmi_client._patched = False  # the next session applies the fix
            label = "racker, pyghmi's lost wake-ups not fixed"
            results.add("ipmi", "racker-unpatched", label, times, fine)
        timed: dict[str, list[float]] = {}
        fine_of: dict[str, int] = {}

        def run(key: str, measure: tuple[float, int]) -> None:
            timed.setdefault(key, []).append(measure[0])
            fine_of[key] = measure[1]

        label = "sessions" if args.sessions else "Basic auth"
        label += ", HTTP" if args.http else ", HTTPS verified"
        clients = {
            "ipmi|racker": "racker bmc check (pyghmi, all at once)",
            "ipmi|ipmitool-parallel": f"ipmitool -C 3, all at once ({n} shells)",
            "redfish|racker": f"racker bmc check (sushy, {label}, all at once)",
            "redfish|racker-auto-first-contact": f"the same, bmc.driver auto, first contact "
            f"({label})",
        }

        for _ in range(args.rounds):  # interleaved, so all see the same machine load
            if ipmi_bmcs:
                run("ipmi|racker", asyncio.run(racker_round(entries)))
                run("ipmi|ipmitool-parallel", ipmitool_parallel(ipmi_bmcs))
            if redfish_bmcs:
                run(
                    "redfish|racker",
                    asyncio.run(racker_round(urls, RedfishDriver, timeout=10, verify_tls=verify)),
                )
                run("redfish|racker-auto-first-contact", asyncio.run(auto_round(probed, verify)))
        for key, times in timed.items():
            protocol, short = key.split("|")
            results.add(protocol, short, clients[key], times, fine_of[key])
        if ipmi_bmcs:
            serial_time, serial_ok = ipmitool_serial(ipmi_bmcs)
            label = "ipmitool -C 3, one BMC after another"
            results.add("ipmi", "ipmitool-serial", label, [serial_time], serial_ok)
    load = os.getloadavg()[0]
    print(f"{n} BMCs per protocol, {args.rounds} rounds, load average {load:.1f}")
    for note in notes:
        print(note)
    print()
    results.print()


if __name__ == "__main__":
    main()
