"""Benchmark: racker's DHCP server vs dnsmasq under perfdhcp, same veth topology, same run.

    .venv/bin/python bench/dhcp.py [--rounds 5] [--rates 2000,4000,8000] [--seconds 5]
    .venv/bin/python bench/dhcp.py --ramp [--seconds 5] [--rates 1000,2000,...] [--profile]
                                   [--rmem-default BYTES] [--no-event-log] [--no-ceiling]
                                   [--perfdhcp-threads single|multi] [--no-pin] [--core]
                                   [--cache-threshold FRACTION] [--null-options minimal|racker]
                                   [--lease-sync]

perfdhcp always poses as a relay agent (source port 67, giaddr = its own address), so the
servers serve a relayed segment 10.98.0.0/20 (pool 10.98.1.0-10.98.8.255) from 10.99.0.1.
1000 distinct clients (-R 1000), full DORA exchanges.

Default (fixed rates, the server's cost): at each rate of --rates (2000, 4000, 8000/s) every
server runs --rounds rounds of --seconds, interleaved (racker, dnsmasq, racker, ...; the order
rotating by round). Per round: the server's CPU µs per DORA exchange (utime + stime of its
process over the round, from /proc/PID/stat, divided by the ACKs perfdhcp received), the lost
exchanges (DISCOVERs sent - ACKs received, in % of the DISCOVERs; perfdhcp waits 0.5 s, -W,
for the replies in flight when it stops) and the 99th percentile of the REQUEST-ACK delay
(perfdhcp -x t prints every exchange's send and receive times). Medians and min-max spread,
and one line per metric and rate: ``SUMMARY dhcp.METRIC@RATE racker=... dnsmasq=... ratio=...
spread=...`` (ratio: median of the per-round ratios; spread: their min-max).

--ramp (the method before 2026-12-04): the rate ramps up and, for each server,
the highest rate with < 0.5 % drops (DISCOVER-OFFER and REQUEST-ACK each) and ACKs at 99 % of
the rate (perfdhcp's own limit) is reported, and the most ACKs/s served in any run with < 0.5 %
drops, with the server's CPU there: perfdhcp on its one core sends slower than asked from
~26000-38000/s (less against racker than against the null responder, whose replies carry 4
options to racker's 7), and a server below full CPU there had room left.
racker runs as `racker serve` does: each lease committed to SQLite before its ACK, by the store's
writer thread (--lease-sync: fsynced too, as dhcp.lease_sync: true), events through
serve's EventHub into the store's event log (perfdhcp's clients are not in nodes.csv: their
events are stored at most 1000/s, the rest counted); --no-event-log drops the events instead,
as this benchmark did before 2026-12-03. dnsmasq with --no-ping --quiet-dhcp --leasefile-ro
(its fastest configuration). The third, bench/peers/dhcp_null.py, is a responder that does
next to nothing: the rate perfdhcp reaches there is the generator's own ceiling, the most any
server can be measured at on this machine (--no-ceiling leaves it out).
Each server has its own pair of namespaces and all run at once; the ramps are interleaved
(at each rate every server in turn, the order rotating), since this shared machine's speed
changes by half within seconds and back-to-back ramps met different phases of it.
Needs root; creates and removes its own namespaces; prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.integration.dhcp.support import default_spec, start, stop  # noqa: E402
from tests.support.netns import Link, Namespace, link  # noqa: E402

from racker.dhcp.memo import ntoa  # noqa: E402
from racker.rack.config import DhcpConfig  # noqa: E402

RELAY_NET = "10.98.0.0/20"
RELAY_IP = "10.98.0.2"
POOL = ("10.98.1.0", "10.98.8.255")
GOAL_DROPS = 0.5  # percent
DEFAULT_RATES = [
    1000,
    2000,
    4000,
    6000,
    8000,
    10000,
    11000,
    12000,
    13000,
    14000,
    16000,
    18000,
    20000,
    22000,
    24000,
    26000,
    28000,
    30000,
    32000,
    34000,
    36000,
    38000,
    40000,
]


@dataclass
class Run:
    rate: int
    sent: int
    drops_offer: float
    drops_ack: float
    achieved: float
    client_cpu: float = 0.0  # perfdhcp's CPU seconds per second of the run (all its threads)
    server_cpu: float = 0.0  # the server process's CPU seconds per second of the run
    client_overflows: int = 0  # replies the kernel dropped at perfdhcp's full socket buffer
    # Requests the kernel dropped at the server's full UDP socket buffer (dnsmasq's socket;
    # racker reads from a packet socket, whose drops are not in these counters).
    server_overflows: int = 0
    acks: int = 0  # REQUEST-ACK exchanges completed
    server_cpu_s: float = 0.0  # the server's CPU seconds (utime + stime) over the run
    p99_ack_ms: float = 0.0  # 99th percentile of the REQUEST-ACK delay (with timing=True)
    server_sys_s: float = 0.0  # of server_cpu_s, in the kernel (syscalls, softirqs charged)

    @property
    def cpu_us_per_exchange(self) -> float:
        return self.server_cpu_s / self.acks * 1e6 if self.acks else float("inf")

    @property
    def kernel_share(self) -> float:
        return self.server_sys_s / self.server_cpu_s if self.server_cpu_s else 0.0

    @property
    def lost(self) -> float:
        """Exchanges lost, in % of those begun: DISCOVERs sent without an ACK at the end."""
        return 100.0 * (self.sent - self.acks) / self.sent if self.sent else 100.0

    @property
    def lossless(self) -> bool:
        """< 0.5 % drops, whatever rate perfdhcp managed to send."""
        return self.sent > 0 and max(self.drops_offer, self.drops_ack) < GOAL_DROPS

    @property
    def clean(self) -> bool:
        """< 0.5 % drops at the asked rate. perfdhcp sends no faster than its one core allows
        (~29000/s here), so a run is also clean only if the ACKs came at 99 % of it."""
        return self.lossless and self.achieved >= self.rate * (1 - 2 * GOAL_DROPS / 100)


def topology(net: Link) -> None:
    net.client.run("ip", "addr", "add", f"{RELAY_IP}/20", "dev", net.cli_if)
    net.client.run("ip", "route", "add", "10.99.0.0/24", "dev", net.cli_if)
    net.server.run("ip", "route", "add", RELAY_NET, "dev", net.srv_if)


def cpu_times(pid: int) -> tuple[float, float]:
    """utime, stime of a process, all its threads (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15)."""
    return sum(cpu_times(pid))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# perfdhcp's thread mode (-g). "multi" (its default on more than one CPU) receives in a second
# thread and needs ~1.3 CPUs at 10000/s here, which leaves a 2-core machine no room for the
# server; "single" sends and receives in one thread: ~1.0 CPU at 12000/s, and no replies lost
# at its own socket. Set by --perfdhcp-threads.
PERFDHCP_THREADS = "single"
# The server on CPU 0, perfdhcp on CPU 1 (when there are two): both servers run under the
# same conditions instead of the scheduler's choice of the moment (see bench/http.py).
SERVER_CPU, CLIENT_CPU = 0, 1


class Tuning:
    spec: ClassVar[dict[str, float]] = {}  # --poll-interval, --commit-window: DhcpServer's knobs


class Perf:
    output: str | None = None  # --perf FILE


class Pinning:
    on = (os.cpu_count() or 1) >= 2


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of process ``pid`` to ``cpu`` (no-op when pinning is off)."""
    if not Pinning.on:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ack_delays(text: str) -> list[float]:
    """REQUEST-ACK delays in ms from perfdhcp -x t ("sent / received: S / R" per exchange)."""
    _, _, section = text.partition("***Timestamps for packets: REQUEST-ACK***")
    delays = []
    for line in section.splitlines():
        if line.startswith("sent / received: "):
            sent, received = line[len("sent / received: ") :].split(" / ")
            delays.append((float(received) - float(sent)) * 1000)
    return delays


def perfdhcp(net: Link, rate: int, seconds: int, server_pid: int, timing: bool = False) -> Run:
    # "ip netns exec" execs perfdhcp in place, so our waited-for children's CPU is perfdhcp's.
    rcvbuf0 = udp_rcvbuf_errors(net.client), udp_rcvbuf_errors(net.server)
    client0, start = children_cpu(), time.monotonic()
    user0, sys0 = cpu_times(server_pid)
    taskset = ["taskset", "-c", str(CLIENT_CPU)] if Pinning.on else []
    result = net.client.run(
        *taskset, "perfdhcp", "-4", "-g", PERFDHCP_THREADS, "-l", net.cli_if, "-r", str(rate),
        "-p", str(seconds), "-R", "1000",
        *(["-x", "t", "-W", "500000"] if timing else []),
        net.server_ip, check=False, timeout=seconds + 60,
    )  # fmt: skip
    wall = time.monotonic() - start
    client_cpu = (children_cpu() - client0) / wall
    user1, sys1 = cpu_times(server_pid)
    server_cpu_s = user1 - user0 + sys1 - sys0
    server_cpu = server_cpu_s / wall
    # Replies that reached perfdhcp's namespace but found its socket buffer full: perfdhcp
    # counts them as drops, though the server answered (the generator did not read in time).
    overflows = udp_rcvbuf_errors(net.client) - rcvbuf0[0]
    server_overflows = udp_rcvbuf_errors(net.server) - rcvbuf0[1]
    text = result.stdout
    sections = re.split(r"\*\*\*Statistics for: ", text)
    stats: dict[str, dict[str, float]] = {}
    for section in sections[1:]:
        name = section.split("*", 1)[0]
        values = {}
        for key in ("sent packets", "received packets", "drops"):
            match = re.search(rf"^{key}: (\d+)", section, re.M)
            values[key] = float(match.group(1)) if match else 0.0
        stats[name] = values

    def ratio(name: str) -> float:
        s = stats.get(name)
        if not s or not s["sent packets"]:
            return 100.0
        return 100.0 * s["drops"] / s["sent packets"]

    sent = int(stats.get("DISCOVER-OFFER", {}).get("sent packets", 0))
    acks = stats.get("REQUEST-ACK", {}).get("received packets", 0.0)
    return Run(
        rate,
        sent,
        ratio("DISCOVER-OFFER"),
        ratio("REQUEST-ACK"),
        acks / seconds,
        client_cpu,
        server_cpu,
        overflows,
        server_overflows,
        int(acks),
        server_cpu_s,
        percentile(ack_delays(text), 0.99) if timing else 0.0,
        sys1 - sys0,
    )


def udp_rcvbuf_errors(ns: Namespace) -> int:
    """UDP datagrams dropped at a full socket buffer in ``ns`` so far (/proc/net/snmp).

    Read, not ``nstat``: nstat keeps one history file per user, which two namespaces would
    share, and each would then report the difference to the other's counters.
    """
    lines = [line.split() for line in ns.run("cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = (line for line in lines if line[0] == "Udp:")
    return int(values[names.index("RcvbufErrors")])


def ramps(
    servers: dict[str, tuple[Link, int]], rates: list[int], seconds: int
) -> dict[str, list[Run]]:
    """Every server's ramp, interleaved: at each rate perfdhcp asks each server in turn (the
    order rotating), so all of them meet the same phases of this shared machine, whose speed
    changes by half within seconds. A server leaves the ramp after two runs past 5 % drops."""
    # Warm-up, not reported: 5000 exchanges give nearly every one of the 1000 clients a lease.
    # A fresh pool costs dnsmasq NAKs (it does not record offers, so two clients can be
    # offered one address), which would otherwise be counted as drops in the first runs.
    for net, pid in servers.values():
        perfdhcp(net, 1000, 5, pid)
    time.sleep(1)
    runs: dict[str, list[Run]] = {label: [] for label in servers}
    active = list(servers)
    for i, rate in enumerate(rates):
        k = i % len(active)
        for label in active[k:] + active[:k]:
            net, pid = servers[label]
            run = perfdhcp(net, rate, seconds, pid)
            runs[label].append(run)
            print(
                f"  {label:7} rate {rate:6}/s: {run.achieved:8.0f} ACKs/s, drops "
                f"{run.drops_offer:.2f} % / {run.drops_ack:.2f} %; CPU perfdhcp "
                f"{run.client_cpu:.2f}, server {run.server_cpu:.2f}; socket overflows perfdhcp "
                f"{run.client_overflows}, server {run.server_overflows}; "
                f"load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
            time.sleep(1)
        active = [
            label
            for label in active
            if len([r for r in runs[label][-2:] if max(r.drops_offer, r.drops_ack) > 5]) < 2
        ]  # twice well past saturation: done
        if not active:
            break
    return runs


def rounds(
    servers: dict[str, tuple[Link, int]], rates: list[int], seconds: int, count: int
) -> dict[str, dict[int, list[Run]]]:
    """``count`` rounds at each fixed rate, the servers interleaved (the order rotating each
    round), after a warm-up that gives nearly every client a lease."""
    for net, pid in servers.values():
        perfdhcp(net, 1000, 5, pid)
    time.sleep(1)
    runs: dict[str, dict[int, list[Run]]] = {label: {r: [] for r in rates} for label in servers}
    labels = list(servers)
    for n in range(count):
        for rate in rates:
            k = n % len(labels)
            for label in labels[k:] + labels[:k]:
                net, pid = servers[label]
                run = perfdhcp(net, rate, seconds, pid, timing=True)
                runs[label][rate].append(run)
                print(
                    f"  round {n + 1} {label:7} {rate:5}/s: {run.acks} ACKs, lost"
                    f" {run.lost:.2f} %, CPU {run.cpu_us_per_exchange:.1f} µs/exchange"
                    f" ({run.server_cpu:.2f} cores, {run.kernel_share:.0%} in the kernel),"
                    f" p99 ACK {run.p99_ack_ms:.2f} ms; drops DO/RA {run.drops_offer:.2f}/"
                    f"{run.drops_ack:.2f} %, replies lost at perfdhcp's socket"
                    f" {run.client_overflows};"
                    f" load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )
                time.sleep(0.5)
    return runs


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def report_rounds(runs: dict[str, dict[int, list[Run]]], rates: list[int]) -> None:
    """Markdown table and one SUMMARY line per metric and rate."""
    metrics = {  # name: (value of a run, format)
        "cpu_us_per_exchange": (lambda r: r.cpu_us_per_exchange, "{:.1f}"),
        "lost_pct": (lambda r: r.lost, "{:.2f}"),
        "p99_ack_ms": (lambda r: r.p99_ack_ms, "{:.2f}"),
    }
    print("| metric | racker | dnsmasq | ratio | spread (racker; dnsmasq; ratio) |")
    print("|---|---:|---:|---:|---|")
    summaries = []
    for rate in rates:
        mine, theirs = runs["racker"][rate], runs["dnsmasq"][rate]
        for name, (value, fmt) in metrics.items():
            a, b = [value(r) for r in mine], [value(r) for r in theirs]
            ratios = [x / y for x, y in zip(a, b, strict=False) if y]
            ratio = f"{median(ratios):.2f}" if ratios else "-"
            spread_ratio = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"

            def span(values: list[float], fmt: str = fmt) -> str:
                return fmt.format(min(values)) + "-" + fmt.format(max(values))

            print(
                f"| {name}@{rate} | {fmt.format(median(a))} | {fmt.format(median(b))} | {ratio}"
                f" | {span(a)}; {span(b)}; {spread_ratio} |"
            )
            summaries.append(
                f"SUMMARY dhcp.{name}@{rate} racker={fmt.format(median(a))}"
                f" dnsmasq={fmt.format(median(b))} ratio={ratio} spread=racker:{span(a)},"
                f"dnsmasq:{span(b)},ratio:{spread_ratio} rounds={len(a)}"
            )
    print()
    for line in summaries:
        print(line)


def best(runs: list[Run]) -> Run | None:
    clean = [r for r in runs if r.clean]
    return max(clean, key=lambda r: r.rate) if clean else None


def most_served(runs: list[Run]) -> Run | None:
    """The lossless run with the most ACKs/s: what the server was seen to serve without loss,
    also where perfdhcp (on its one core) could not send as fast as asked. Below full CPU
    there, the server had room left and the generator set the figure."""
    lossless = [r for r in runs if r.lossless]
    return max(lossless, key=lambda r: r.achieved) if lossless else None


def clean_up_to(runs: list[Run]) -> int:
    """The highest rate below the first unclean one (a stricter figure on a noisy machine)."""
    rate = 0
    for run in runs:
        if not run.clean:
            break
        rate = run.rate
    return rate


def py_spy_path() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


@contextlib.contextmanager
def racker_server(
    net: Link,
    workdir: Path,
    profile: bool,
    event_log: bool,
    cache_threshold: float | None,
    lease_sync: bool = False,
    cprofile: str | None = None,
) -> Iterator[int]:
    relays = [{"subnet": RELAY_NET, "pool": f"{POOL[0]}-{POOL[1]}"}]
    caching = {} if cache_threshold is None else {"cache_threshold": cache_threshold}
    spec = default_spec(
        net,
        workdir,
        unknown_clients="pool",
        relays=relays,
        events=None,
        event_log=event_log,
        log_level="WARNING",  # `racker serve` without -v
        lease_sync=lease_sync,
        **caching,
    )
    if cprofile:
        spec["cprofile"] = cprofile
    spec.update(Tuning.spec)
    served = start(net, workdir, spec)
    profiler = None
    try:
        if profile:
            # "ip netns exec" execs the runner in place: its pid is the server's.
            # Collapsed stacks (text, one line per stack: greppable, flamegraph.pl reads it).
            out = workdir.parent / "racker-dhcp-profile.txt"
            print(f"  py-spy profile (collapsed stacks) -> {out}", file=sys.stderr)
            profiler = subprocess.Popen(
                [py_spy_path(), "record", "--format", "raw", "-o", str(out),
                 "-p", str(served.proc.pid)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        pin(served.proc.pid, SERVER_CPU)
        if Perf.output:  # --perf FILE: where the process's CPU goes (kernel, libpython, sqlite)
            profiler = subprocess.Popen(
                ["perf", "record", "-q", "-F", "999", "-g", "-o", Perf.output,
                 "-p", str(served.proc.pid)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        yield served.proc.pid
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT only
            profiler.wait(timeout=30)
        print("  racker " + stop(served).strip().splitlines()[-1], file=sys.stderr)


@contextlib.contextmanager
def process_server(net: Link, name: str, command: list[str]) -> Iterator[int]:
    proc = net.server.popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {proc.communicate()[1].decode()}")
        pin(proc.pid, SERVER_CPU)
        yield proc.pid
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def dnsmasq_command(net: Link) -> list[str]:
    return [
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--no-ping",
        "--quiet-dhcp", "--leasefile-ro", "--dhcp-authoritative", "--pid-file=",
        f"--interface={net.srv_if}", "--bind-interfaces",
        f"--dhcp-range={POOL[0]},{POOL[1]},255.255.240.0,1h",
    ]  # fmt: skip


def null_command(net: Link, options: str) -> list[str]:
    """bench/peers/dhcp_null.py: perfdhcp's ceiling, the highest rate measurable here."""
    return [sys.executable, str(REPO / "bench" / "peers" / "dhcp_null.py"), net.server_ip, options]


CORE_VARIANTS = {  # name: (memo_size, cache_threshold)
    "every message decoded and encoded, every ACK rewrites its lease": (0, 0.0),
    "repeated requests remembered, every ACK rewrites its lease": (None, 0.0),
    "repeated requests remembered, lease caching (racker's defaults)": (None, None),
}


def core_cost(rounds: int = 10, clients: int = 1000) -> dict[str, float]:
    """µs per message of ``DhcpCore.handle`` in-process, per variant of ``CORE_VARIANTS``
    (rounds interleaved): perfdhcp-like relayed DORA exchanges (parameter list
    1,28,2,3,15,6,12) of ``clients`` MACs, leases taken as the server does. A round is 50 ms
    of the clients' time: each client asks every 50 ms, as under perfdhcp at 20000/s."""
    from scapy.layers.dhcp import BOOTP, DHCP

    from racker.dhcp.codec import decode
    from racker.dhcp.core import DhcpCore, ReceiveInfo
    from racker.dhcp.memo import MEMO_SIZE
    from racker.dhcp.settings import core_settings
    from racker.model import AddressRange, NetworkPlan
    from racker.rack.config import Config, RelaySegment

    plan = NetworkPlan(
        subnet=ipaddress.IPv4Network("10.99.0.0/24"),
        server=ipaddress.IPv4Address("10.99.0.1"),
        nodes=AddressRange.parse("10.99.0.64-10.99.0.127"),
        bmcs=AddressRange.parse("10.99.0.128-10.99.0.191"),
    )
    relay = RelaySegment(ipaddress.IPv4Network(RELAY_NET), AddressRange.parse("-".join(POOL)))

    def core(memo_size: int | None, threshold: float | None) -> DhcpCore:
        dhcp = DhcpConfig(unknown_clients="pool", relays=[relay])
        if threshold is not None:
            dhcp = replace(dhcp, cache_threshold=threshold)
        settings = core_settings(Config(dhcp=dhcp), plan)
        return DhcpCore(settings, {}, memo_size=MEMO_SIZE if memo_size is None else memo_size)

    def packet(mtype: str, i: int, extra: list[object]) -> bytes:
        chaddr = bytes([0x52, 0x54, 0, 0, i >> 8, i & 255]) + bytes(10)
        options = [("message-type", mtype), ("param_req_list", [1, 28, 2, 3, 15, 6, 12])]
        bootp = BOOTP(op=1, xid=i, giaddr=RELAY_IP, hops=1, chaddr=chaddr)
        return bytes(bootp / DHCP(options=[*options, *extra, "end"]))

    info, now = ReceiveInfo(relayed=True), 1000.0
    cores = {name: core(*variant) for name, variant in CORE_VARIANTS.items()}
    discovers = [packet("discover", i, []) for i in range(clients)]
    first = next(iter(cores.values()))
    offers = [decode(first.handle(d, info, now).reply or b"") for d in discovers]
    requests = [
        packet("request", i, [("requested_addr", ntoa(o.yiaddr)), ("server_id", "10.99.0.1")])
        for i, o in enumerate(offers)
    ]
    best = dict.fromkeys(cores, float("inf"))
    for r in range(rounds):
        for name, c in cores.items():
            handle = c.handle
            start = time.perf_counter()
            for message in discovers + requests:
                handle(message, info, now + r * 0.05)
            best[name] = min(best[name], time.perf_counter() - start)
            c.leases.take_changes()
    return {name: t / (2 * clients) * 1e6 for name, t in best.items()}


def dnsmasq_version() -> str:
    out = subprocess.run(["dnsmasq", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[2]  # "Dnsmasq version 2.90  Copyright ..."


RMEM_DEFAULT = Path("/proc/sys/net/core/rmem_default")


@contextlib.contextmanager
def rmem_default(size: int | None) -> Iterator[int]:
    """Set net.core.rmem_default (host-wide) for the run, if asked; yield the value in force.

    A namespace copies the value when it is created and cannot change its own copy here, so
    it must be set before ``link()``; the old value is written back however the run ends.
    """
    before = int(RMEM_DEFAULT.read_text())
    if size is None:
        yield before
        return
    RMEM_DEFAULT.write_text(str(size))
    try:
        yield size
    finally:
        RMEM_DEFAULT.write_text(str(before))


ROUND_RATES = [2000, 4000, 8000]


def main_rounds(args: argparse.Namespace, rates: list[int]) -> int:
    load_before = f"{os.getloadavg()[0]:.1f}"
    with (
        rmem_default(args.rmem_default) as rmem,
        tempfile.TemporaryDirectory(prefix="bench-dhcp-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        servers: dict[str, tuple[Link, int]] = {}
        net = stack.enter_context(link())
        topology(net)
        if args.only == "dnsmasq":
            servers["dnsmasq"] = (
                net,
                stack.enter_context(process_server(net, "dnsmasq", dnsmasq_command(net))),
            )
            rounds(servers, rates, args.seconds, args.rounds)
            return 0
        racker = racker_server(
            net, Path(tmp), args.profile, not args.no_event_log, args.cache_threshold,
            args.lease_sync, args.cprofile,
        )  # fmt: skip
        servers["racker"] = (net, stack.enter_context(racker))
        if args.only == "racker":
            rounds(servers, rates, args.seconds, args.rounds)
            return 0
        net = stack.enter_context(link())
        topology(net)
        dnsmasq = process_server(net, "dnsmasq", dnsmasq_command(net))
        servers["dnsmasq"] = (net, stack.enter_context(dnsmasq))
        print(f"racker and dnsmasq {dnsmasq_version()}, rounds interleaved:", file=sys.stderr)
        runs = rounds(servers, rates, args.seconds, args.rounds)
    print(
        f"perfdhcp -4 -g {PERFDHCP_THREADS} -r RATE -p {args.seconds} -R 1000 -x t -W 500000"
        f" (relayed, full DORA), veth; {args.rounds} rounds per rate, interleaved; medians\n"
    )
    report_rounds(runs, rates)
    threshold = args.cache_threshold
    if threshold is None:
        threshold = f"{DhcpConfig().cache_threshold} (default)"
    print(
        f"\nload average before/after: {load_before} / {os.getloadavg()[0]:.1f};"
        f" {'pinned: server on CPU 0, perfdhcp on CPU 1' if Pinning.on else 'not pinned'};"
        f" racker: event log {'off' if args.no_event_log else 'on'}, lease_sync"
        f" {args.lease_sync}, dhcp.cache_threshold {threshold}; net.core.rmem_default {rmem}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument(
        "--rates", help="default: 2000,4000,8000 (rounds), 1000,2000,...,40000 (--ramp)"
    )
    parser.add_argument(
        "--cprofile",
        metavar="FILE",
        help="racker's server under cProfile, its stats written to FILE (pstats) at the end",
    )
    parser.add_argument(
        "--poll-interval", type=float, metavar="S", help="racker's DhcpServer poll_interval"
    )
    parser.add_argument(
        "--commit-window", type=float, metavar="S", help="racker's DhcpServer commit_window"
    )
    parser.add_argument(
        "--perf", metavar="FILE", help="perf record -g of racker's server process into FILE"
    )
    parser.add_argument(
        "--only",
        choices=("racker", "dnsmasq"),
        help="rounds of one server only (profiling)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per fixed rate")
    parser.add_argument(
        "--ramp",
        action="store_true",
        help="the rising-rate ramp (highest clean rate) instead of fixed-rate rounds",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy flame graph of racker")
    parser.add_argument("--perfdhcp-threads", choices=("single", "multi"), default="single")
    parser.add_argument("--no-pin", action="store_true", help="leave placement to the scheduler")
    parser.add_argument(
        "--no-event-log",
        action="store_true",
        help="racker's events are built but dropped, not written to its event log in SQLite",
    )
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the ramp against bench/peers/dhcp_null.py (perfdhcp's own ceiling)",
    )
    parser.add_argument(
        "--core", action="store_true", help="only the in-process cost of DhcpCore.handle"
    )
    parser.add_argument(
        "--null-options",
        choices=("minimal", "racker"),
        default="minimal",
        help="the null responder's reply options: 53, 54, 51, 1, or the 7 racker sends",
    )
    parser.add_argument(
        "--cache-threshold",
        type=float,
        metavar="FRACTION",
        help="racker's dhcp.cache_threshold (default: racker's own; 0: every REQUEST renews"
        " and rewrites its lease, as before lease caching)",
    )
    parser.add_argument(
        "--lease-sync",
        action="store_true",
        help="racker's dhcp.lease_sync: every lease commit fsynced (SQLite synchronous=FULL)",
    )
    parser.add_argument(
        "--rmem-default",
        type=int,
        metavar="BYTES",
        help="net.core.rmem_default for the run (new namespaces copy it; restored after):"
        " the socket buffer of dnsmasq and perfdhcp, which do not size their own",
    )
    args = parser.parse_args()
    if args.profile and not Path(py_spy_path()).exists():
        print("--profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    if args.core:
        for name, cost in core_cost().items():
            print(f"DhcpCore.handle: {cost:.1f} µs per message (best of 10 rounds), {name}")
        return 0
    global PERFDHCP_THREADS  # noqa: PLW0603 - one setting for every perfdhcp run
    PERFDHCP_THREADS = args.perfdhcp_threads
    Pinning.on = Pinning.on and not args.no_pin
    Perf.output = args.perf
    for knob in ("poll_interval", "commit_window"):
        if getattr(args, knob) is not None:
            Tuning.spec[knob] = getattr(args, knob)
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    if not args.ramp:
        return main_rounds(args, rates or ROUND_RATES)
    rates = rates or DEFAULT_RATES
    load_before = f"{os.getloadavg()[0]:.1f}"
    with (
        rmem_default(args.rmem_default) as rmem,
        tempfile.TemporaryDirectory(prefix="bench-dhcp-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        # Each server on its own pair of namespaces, all of them running, for interleaving.
        def network() -> Link:
            net = stack.enter_context(link())
            topology(net)
            return net

        persisted = "leases" if args.no_event_log else "leases and events"
        servers: dict[str, tuple[Link, int]] = {}
        net = network()
        servers["racker"] = (
            net,
            stack.enter_context(
                racker_server(
                    net,
                    Path(tmp),
                    args.profile,
                    not args.no_event_log,
                    args.cache_threshold,
                    args.lease_sync,
                )
            ),
        )
        net = network()
        servers["dnsmasq"] = (
            net,
            stack.enter_context(process_server(net, "dnsmasq", dnsmasq_command(net))),
        )
        if not args.no_ceiling:
            net = network()
            servers["null"] = (
                net,
                stack.enter_context(
                    process_server(net, "null responder", null_command(net, args.null_options))
                ),
            )
        print(
            f"racker ({persisted} persisted to SQLite), dnsmasq {dnsmasq_version()}"
            + ("" if args.no_ceiling else ", null responder (bench/peers/dhcp_null.py)")
            + ", interleaved:",
            file=sys.stderr,
        )
        runs = ramps(servers, rates, args.seconds)
    racker, dnsmasq, ceiling = runs["racker"], runs["dnsmasq"], runs.get("null", [])
    print(
        f"perfdhcp -4 -g {PERFDHCP_THREADS} -r RATE -p {args.seconds} -R 1000 (relayed, full DORA),"
        " veth, 1 run\n"
    )
    print(
        "| server | highest clean rate (< 0.5 % drops, ACKs/s >= 99 % of it) | ACKs/s there | ratio"
        " | clean up to (all lower rates clean) | ratio | most ACKs/s served with < 0.5 % drops"
        " (rate asked; server CPU) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [(f"dnsmasq {dnsmasq_version()}", dnsmasq), ("racker", racker)]
    if ceiling:  # what the generator can show at all: no server measured here exceeds it
        rows.append(("null responder (perfdhcp's ceiling)", ceiling))
    d, strict_d, served_d = best(dnsmasq), clean_up_to(dnsmasq), most_served(dnsmasq)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if a and b else "-"

    for name, server_runs in rows:
        run, upto = best(server_runs), clean_up_to(server_runs)
        served = most_served(server_runs)
        rate = f"{run.rate}/s" if run else "none"
        achieved = f"{run.achieved:.0f}" if run else "-"
        most = (
            f"{served.achieved:.0f} ({served.rate}/s; {served.server_cpu:.2f})" if served else "-"
        )
        print(
            f"| {name} | {rate} | {achieved} | {ratio(run.rate if run else 0, d.rate if d else 0)}"
            f" | {upto}/s | {ratio(upto, strict_d)} | {most} | "
            + ratio(served.achieved if served else 0, served_d.achieved if served_d else 0)
            + " |"
        )
    print(f"\nload average before/after: {load_before} / {os.getloadavg()[0]:.1f}")
    print("pinned: server on CPU 0, perfdhcp on CPU 1" if Pinning.on else "not pinned (--no-pin)")
    threshold = args.cache_threshold
    if threshold is None:
        threshold = f"{DhcpConfig().cache_threshold} (default)"
    sync = "fsynced at every commit" if args.lease_sync else "not fsynced (synchronous=NORMAL)"
    print(
        f"racker: {persisted} persisted to SQLite off the loop, leases before their ACKs,"
        f" {sync}; dhcp.cache_threshold {threshold}"
    )
    print(
        f"net.core.rmem_default {rmem} bytes: the receive buffer of dnsmasq's and perfdhcp's"
        " sockets (racker asks for 4 MiB on its own)"
    )
    print(
        "\nAll rates: drops DISCOVER-OFFER / REQUEST-ACK; replies dropped at perfdhcp's full"
        " socket buffer (and, for dnsmasq, requests dropped at its own); CPU seconds per"
        " second of perfdhcp (all its threads) / the server\n"
    )
    print(
        "| rate/s | racker drops | overflows | CPU perfdhcp / racker"
        " | dnsmasq drops | overflows perfdhcp / dnsmasq | CPU perfdhcp / dnsmasq |"
    )
    print("|---|---|---:|---|---|---:|---|")
    mine, theirs = {x.rate: x for x in racker}, {x.rate: x for x in dnsmasq}
    for rate in sorted(set(mine) | set(theirs)):
        cells = []
        for run in (mine.get(rate), theirs.get(rate)):
            if run is None:
                cells += ["-", "-", "-"]
            else:
                overflows = str(run.client_overflows)
                if run is theirs.get(rate):
                    overflows += f" / {run.server_overflows}"
                cells += [
                    f"{run.drops_offer:.2f} % / {run.drops_ack:.2f} %",
                    overflows,
                    f"{run.client_cpu:.2f} / {run.server_cpu:.2f}",
                ]
        print(f"| {rate} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
