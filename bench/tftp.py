"""TFTP benchmark: racker vs dnsmasq on one veth link (issue #22's method by default).

    .venv/bin/python bench/tftp.py [--runs 5]             # the cost method (below)
    .venv/bin/python bench/tftp.py --classic [--runs 5]   # the older wall-time table

The cost method, unpinned (servers and clients share both cores, as on a management node):
racker with all transfers on one port (the default), racker with a port per transfer
(``TftpSettings(single_port=False)``) and ``dnsmasq --port=0 --enable-tftp`` run at once on
their own addresses; every round measures each case for each server back to back, the order
rotating. Cases: storms of 20 and 40 curls at blksize 1468 fetching an ipxe.efi-sized file of
random bytes, one 20 MiB transfer in lock-step at 512 and 1468 (curl), and with windowsize 4
(what OVMF asks) and 16 (atftp 0.8, a C client that sends RFC 7440's windowsize; dnsmasq does
not grant it and serves atftp in lock-step). Per case: throughput (bytes over the wall time of
the clients' run) and the server's CPU (utime+stime deltas of its process from
/proc/PID/stat, 10 ms ticks) per MiB, with the clients' CPU per MiB beside it (the load
generator's own cost). Prints a markdown table, per-round ratio ranges, and one line per
metric: ``SUMMARY tftp.<case>.<metric>[<variant>] racker=... dnsmasq=... ratio=... spread=...``.

The classic table (``--classic``) compares racker, racker+uvloop, dnsmasq and tftpd-hpa in wall
time. It sets up two throwaway network namespaces (tests/support/netns.py) and writes a 50 MiB
and a 1 MiB file of random bytes to a temporary directory. The servers (racker under asyncio's
own event loop, racker under uvloop when it is installed, dnsmasq, tftpd-hpa) run at the same
time, each on port 69 of its own address in the server namespace (idle ones cost nothing), so
that every case is measured for all of them within seconds of each other, in an order that
rotates from run to run: load from other work on a shared machine then hits all servers alike
instead of whichever ran during a busy minute. The cases: the 50 MiB file with curl at blksize
512 and 1468, 20 parallel 1 MiB downloads with curl, then the windowed client of the tests
(tests/integration/tftp/client.py) and atftp 0.8 (a packaged client that sends windowsize)
fetching the 50 MiB file with windowsize 1, 8 and 16 (dnsmasq and tftpd-hpa do not grant
windowsize, so they stay lock-step). Every download is compared byte for byte, outside the timed
part (the client's run, from its start to its exit); the file is in the page cache after the
first. Each figure is the median of ``--runs`` runs. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.support.netns import Link, Namespace, link  # noqa: E402

SERVER_IP, CLIENT_IP = "10.99.0.1", "10.99.0.2"
ADDRESSES = {
    "racker": SERVER_IP,
    "racker-ports": "10.99.0.9",
    "racker+uvloop": "10.99.0.5",
    "dnsmasq": "10.99.0.3",
    "tftpd-hpa": "10.99.0.4",
}
MIB = 1024 * 1024
IPXE_EFI_SIZE = 850_528  # /usr/lib/ipxe/ipxe.efi (Debian's ipxe 1.21), what OVMF fetches
# Servers on CPU 0, clients on CPU 1 (when there are two), so every server runs under the same
# conditions instead of the scheduler's choice of the moment (see bench/http.py). --no-pin.
SERVER_CPU, CLIENT_CPU = "0", "1"


class Pinning:
    on = (os.cpu_count() or 1) >= 2


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if Pinning.on else cmd


RACKER = """
import asyncio, logging
from pathlib import Path
from racker.events import discard
from racker.tftp.server import TftpServer
from racker.tftp.settings import TftpSettings
from racker.tftp.transfer import TransferLimits, max_blksize_for_mtu
logging.basicConfig(level=logging.ERROR)
async def main():
    limits = TransferLimits(max_blksize=max_blksize_for_mtu(1500))
    settings = TftpSettings((Path({root!r}),), limits=limits, single_port={single!r})
    server = TftpServer({ip!r}, settings, discard)
    await server.start()
    await asyncio.Event().wait()
{run}
"""


def server_commands(root: Path, state: Path) -> dict[str, list[str]]:
    ip = ADDRESSES
    return {
        "racker": [sys.executable, "-c", RACKER.format(
            ip=ip["racker"], root=str(root), single=True,
            run="asyncio.run(main())")],
        # The per-transfer-port mode (TftpSettings(single_port=False)): a socket pair per transfer.
        "racker-ports": [sys.executable, "-c", RACKER.format(
            ip=ip["racker-ports"], root=str(root), single=False,
            run="asyncio.run(main())")],
        # The same server under uvloop's event loop (libuv), if installed: what asyncio's own
        # loop costs per wake-up, which a lock-step transfer pays once per block.
        "racker+uvloop": [sys.executable, "-c", RACKER.format(
            ip=ip["racker+uvloop"], root=str(root), single=True,
            run="import uvloop; uvloop.run(main())")],
        "dnsmasq": [
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
            f"--tftp-root={root}", f"--listen-address={ip['dnsmasq']}", "--bind-interfaces",
            "--user=root", f"--pid-file={state / 'dnsmasq.pid'}", "--log-facility=-",
        ],
        "tftpd-hpa": [
            "in.tftpd", "-L", "-u", "root", "--address", f"{ip['tftpd-hpa']}:69", "-s", str(root),
        ],
    }  # fmt: skip


@contextlib.contextmanager
def running(ns: Namespace, command: list[str], ip: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = ns.popen(
        pinned(SERVER_CPU, command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):  # until port 69 is bound
            if f"{ip}:69 " in ns.run("ss", "-uln").stdout:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{command[0]} did not bind port 69")
        yield proc  # ip netns exec and taskset exec: proc.pid is the server's own
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(action: Callable[[], float | None]) -> float:
    """Seconds of one run; an action may return its own measurement."""
    started = time.monotonic()
    own = action()
    return own if own is not None else time.monotonic() - started


def curl(ip: str, name: str, blksize: int, out: Path) -> list[str]:
    cmd = ["curl", "-sS", "--tftp-blksize", str(blksize), "-o", str(out), f"tftp://{ip}/{name}"]
    return pinned(CLIENT_CPU, cmd)


def check(out: Path, original: Path) -> None:
    if out.stat().st_size != original.stat().st_size or out.read_bytes() != original.read_bytes():
        raise RuntimeError(f"{out} differs from {original}")


Case = Callable[[Link, str, Path, Path], Callable[[], float | None]]


def single(blksize: int) -> Case:
    def case(net: Link, ip: str, root: Path, work: Path) -> Callable[[], float]:
        return lambda: _single(net, ip, root, work, blksize)

    return case


def _single(net: Link, ip: str, root: Path, work: Path, blksize: int) -> float:
    out = work / "single.out"
    started = time.monotonic()
    net.client.run(*curl(ip, "50m.bin", blksize, out), timeout=300)
    took = time.monotonic() - started
    check(out, root / "50m.bin")  # not timed: comparing 50 MiB is the benchmark's own work
    return took


def parallel(count: int, blksize: int) -> Case:
    def case(net: Link, ip: str, root: Path, work: Path) -> Callable[[], float]:
        def action() -> float:
            outs = [work / f"p{i}.out" for i in range(count)]
            started = time.monotonic()
            procs = [net.client.popen(curl(ip, "1m.bin", blksize, out)) for out in outs]
            if any(p.wait(300) != 0 for p in procs):
                raise RuntimeError("a parallel download failed")
            took = time.monotonic() - started
            for out in outs:
                check(out, root / "1m.bin")
            return took

        return action

    return case


def windowed(windowsize: int) -> Case:
    def case(net: Link, ip: str, root: Path, work: Path) -> Callable[[], float]:
        def action() -> float:
            out = work / "w.out"
            args = ["env", f"PYTHONPATH={REPO}:{REPO / 'src'}", sys.executable, "-m",
                    "tests.integration.tftp.client", ip, "50m.bin", str(out),
                    "--blksize", "1468", "--windowsize", str(windowsize)]  # fmt: skip
            result = json.loads(net.client.run(*pinned(CLIENT_CPU, args), timeout=300).stdout)
            check(out, root / "50m.bin")
            return float(result["seconds"])  # the transfer itself, without interpreter start-up

        return action

    return case


def atftp_windowed(windowsize: int) -> Case:
    def case(net: Link, ip: str, root: Path, work: Path) -> Callable[[], float]:
        def action() -> float:
            out = work / "a.out"
            started = time.monotonic()
            atftp = ["atftp", "--option", "blksize 1468", "--option", f"windowsize {windowsize}",
                     "-g", "-r", "50m.bin", "-l", str(out), ip]  # fmt: skip
            net.client.run(*pinned(CLIENT_CPU, atftp), timeout=300)
            took = time.monotonic() - started
            check(out, root / "50m.bin")
            return took

        return action

    return case


CASES: dict[str, Case] = {
    "50 MiB curl 512": single(512),
    "50 MiB curl 1468": single(1468),
    "20x1 MiB curl 512": parallel(20, 512),
    "20x1 MiB curl 1468": parallel(20, 1468),
    **{f"50 MiB windowsize {ws}": windowed(ws) for ws in (1, 8, 16)},
    **{f"50 MiB atftp windowsize {ws}": atftp_windowed(ws) for ws in (1, 8, 16)},
}


def codec_speed() -> tuple[float, float]:
    """Microseconds per (decode ACK + encode DATA): racker's codec vs tftpy's packet layer."""
    from tftpy.TftpPacketFactory import TftpPacketFactory
    from tftpy.TftpPacketTypes import TftpPacketDAT

    from racker.tftp.packets import decode, encode_data

    payload, ack, factory = os.urandom(1468), b"\0\4\1\2", TftpPacketFactory()

    def ours() -> None:
        decode(ack)
        encode_data(258, payload)

    def theirs() -> None:
        factory.parse(ack)
        packet = TftpPacketDAT()
        packet.blocknumber, packet.data = 258, payload
        packet.encode()

    n = 20000
    return (
        min(timeit.repeat(ours, number=n, repeat=3)) / n * 1e6,
        min(timeit.repeat(theirs, number=n, repeat=3)) / n * 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true", help="leave placement to the scheduler")
    parser.add_argument(
        "--classic", action="store_true", help="the wall-time table of every server and client"
    )
    args = parser.parse_args()
    if not args.classic:
        if os.geteuid() != 0 or not all(shutil.which(t) for t in ("dnsmasq", "curl", "atftp")):
            print("needs root, dnsmasq, curl and atftp", file=sys.stderr)
            return 2
        Pinning.on = False  # the cost method runs unpinned: server and clients share the cores
        return cost_method(args.runs)
    Pinning.on = Pinning.on and not args.no_pin
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("dnsmasq", "in.tftpd", "curl")):
        print("needs root, dnsmasq, in.tftpd (tftpd-hpa) and curl", file=sys.stderr)
        return 2
    servers = ["racker", "racker+uvloop", "dnsmasq", "tftpd-hpa"]
    if importlib.util.find_spec("uvloop") is None:
        servers.remove("racker+uvloop")
    rows: dict[str, dict[str, float]] = {s: {} for s in servers}
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-tftp-") as tmp,
        link(SERVER_IP, 24, CLIENT_IP) as net,
    ):
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        os.chmod(tmp, 0o755)  # noqa: S103 - dnsmasq and in.tftpd read the files below
        with open(root / "50m.bin", "wb") as f:
            for _ in range(50):
                f.write(os.urandom(MIB))
        (root / "1m.bin").write_bytes(os.urandom(MIB))
        commands = server_commands(root, work)
        for ip in ADDRESSES.values():
            if ip != SERVER_IP:
                net.server.run("ip", "addr", "add", f"{ip}/24", "dev", net.srv_if)
        loads = [os.getloadavg()[0]]
        samples: dict[str, dict[str, list[float]]] = {s: {c: [] for c in CASES} for s in servers}
        with contextlib.ExitStack() as stack:
            for server in servers:
                stack.enter_context(running(net.server, commands[server], ADDRESSES[server]))
            for run in range(args.runs):
                turn = run % len(servers)
                order = servers[turn:] + servers[:turn]  # each server goes first in turn
                for case, make in CASES.items():
                    for server in order:
                        action = make(net, ADDRESSES[server], root, work)
                        samples[server][case].append(timed(action))
                loads.append(os.getloadavg()[0])
                print(f"run {run + 1}: {json.dumps(samples)}", file=sys.stderr)
        for server in servers:
            rows[server] = {c: statistics.median(v) for c, v in samples[server].items()}
    print(f"1-minute load average during the run: {min(loads):.2f}-{max(loads):.2f}")
    where = f"servers on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}"
    print(f"pinned: {where}" if Pinning.on else "not pinned (--no-pin)")
    ours, theirs = codec_speed()
    report(rows, ours, theirs, args.runs)
    paired(samples)
    return 0


def report(rows: dict[str, dict[str, float]], ours: float, theirs: float, runs: int) -> None:
    cases = list(rows["racker"])
    ours_ = [s for s in rows if s.startswith("racker")]
    head = f"| case (median of {runs}; seconds, MiB/s) | {' | '.join(rows)} |"
    print(head + "".join(f" {s} vs dnsmasq |" for s in ours_))
    print("|---" * (1 + len(rows) + len(ours_)) + "|")
    for case in cases:
        size = 50 if case.startswith("50") else 20
        cells = [f"{rows[s][case]:.2f} s ({size / rows[s][case]:.1f})" for s in rows]
        ratios = [f"{rows['dnsmasq'][case] / rows[s][case]:.2f}x" for s in ours_]
        print(f"| {case} | {' | '.join(cells)} | {' | '.join(ratios)} |")

    def lockstep_case(server: str, case: str) -> bool:
        # dnsmasq and tftpd-hpa grant no window; racker runs lock-step with curl and at 1
        return (
            not server.startswith("racker")
            or "windowsize" not in case
            or case.endswith("windowsize 1")
        )

    # Every 50 MiB transfer at 1468 that ran lock-step, with any server and any client.
    lockstep = min(
        seconds
        for server, row in rows.items()
        for case, seconds in row.items()
        if case.startswith("50 MiB") and "512" not in case and lockstep_case(server, case)
    )
    print()
    for server in ours_:
        for client in ("", "atftp "):
            w16 = rows[server][f"50 MiB {client}windowsize 16"]
            same = min(  # the same client in lock-step
                row[case]
                for srv, row in rows.items()
                for case in row
                if case.startswith(f"50 MiB {client}windowsize") and lockstep_case(srv, case)
            )
            print(
                f"{server} {client or 'test client '}windowsize 16 vs the best lock-step 50 MiB "
                f"transfer ({lockstep:.2f} s): {lockstep / w16:.2f}x; vs the same client's best "
                f"lock-step ({same:.2f} s): {same / w16:.2f}x"
            )
    print(f"codec, decode ACK + encode DATA: racker {ours:.2f} us, tftpy {theirs:.2f} us")


def paired(samples: dict[str, dict[str, list[float]]]) -> None:
    """Ratios within each run (the servers measured back to back), median and range over runs.

    Steadier than ratios of medians when the machine's load changes between runs.
    """

    def spread(ratios: list[float]) -> str:
        return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"

    runs = range(len(samples["dnsmasq"]["50 MiB curl 512"]))
    print("\nPer-run ratios, median (range):")
    for server in (s for s in samples if s.startswith("racker")):
        for case in samples[server]:
            if "windowsize" not in case or case.endswith("windowsize 1"):
                ratios = [samples["dnsmasq"][case][i] / samples[server][case][i] for i in runs]
                print(f"- {server} vs dnsmasq, {case}: {spread(ratios)}")
        for client in ("", "atftp "):
            ratios = []
            for i in runs:
                best = min(
                    row[case][i]
                    for srv, row in samples.items()
                    for case in row
                    if case.startswith("50 MiB")
                    and "512" not in case
                    and (
                        not srv.startswith("racker")
                        or "windowsize" not in case
                        or case.endswith("windowsize 1")
                    )
                )
                ratios.append(best / samples[server][f"50 MiB {client}windowsize 16"][i])
            name = client or "test client "
            print(f"- {server} {name}windowsize 16 vs that run's best lock-step: {spread(ratios)}")


# --- The cost method (issue #22): server CPU per MiB and storm throughput, unpinned --------

COST_SERVERS = ("racker", "racker-ports", "dnsmasq")
OURS = COST_SERVERS[:-1]
STORMS = (20, 40)
SINGLE_MIB = 20


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def storm_case(count: int) -> Callable[[Link, str, Path, Path], int]:
    """``count`` curls at blksize 1468 fetch an ipxe.efi-sized file at once; bytes served."""

    def action(net: Link, ip: str, root: Path, work: Path) -> int:
        outs = [work / f"s{i}.out" for i in range(count)]
        cmd = ["curl", "-sS", "--tftp-blksize", "1468", "-o"]
        procs = [net.client.popen([*cmd, str(o), f"tftp://{ip}/ipxe.efi"]) for o in outs]
        if any(p.wait(300) != 0 for p in procs):
            raise RuntimeError(f"a storm download from {ip} failed")
        return count * (root / "ipxe.efi").stat().st_size

    return action


def single_case(blksize: int, windowsize: int) -> Callable[[Link, str, Path, Path], int]:
    """One SINGLE_MIB transfer: curl in lock-step, atftp with a window (RFC 7440)."""

    def action(net: Link, ip: str, root: Path, work: Path) -> int:
        out = work / "single.out"
        if windowsize == 1:
            cmd = ["curl", "-sS", "--tftp-blksize", str(blksize), "-o", str(out),
                   f"tftp://{ip}/big.bin"]  # fmt: skip
        else:
            options = ["--option", f"blksize {blksize}", "--option", f"windowsize {windowsize}"]
            cmd = ["atftp", *options, "-g", "-r", "big.bin", "-l", str(out), ip]
        net.client.run(*cmd, timeout=300)
        return (root / "big.bin").stat().st_size

    return action


COST_CASES: dict[str, Callable[[Link, str, Path, Path], int]] = {
    **{f"storm{n}": storm_case(n) for n in STORMS},
    "lockstep512": single_case(512, 1),
    "lockstep1468": single_case(1468, 1),
    "windowsize4": single_case(1468, 4),
    "windowsize16": single_case(1468, 16),
}


def cost_method(runs: int) -> int:
    """Interleaved rounds of every case for every server; medians and per-round ratio ranges."""
    samples: dict[str, dict[str, list[tuple[float, float, float]]]] = {
        s: {c: [] for c in COST_CASES} for s in COST_SERVERS
    }
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-tftp-") as tmp,
        link(SERVER_IP, 24, CLIENT_IP) as net,
    ):
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        os.chmod(tmp, 0o755)  # noqa: S103 - dnsmasq reads the files below
        (root / "ipxe.efi").write_bytes(os.urandom(IPXE_EFI_SIZE))
        with open(root / "big.bin", "wb") as f:
            for _ in range(SINGLE_MIB):
                f.write(os.urandom(MIB))
        commands = server_commands(root, work)
        for server in COST_SERVERS:
            if ADDRESSES[server] != SERVER_IP:
                net.server.run("ip", "addr", "add", f"{ADDRESSES[server]}/24", "dev", net.srv_if)
        loads = [os.getloadavg()[0]]
        with contextlib.ExitStack() as stack:
            pids = {
                s: stack.enter_context(running(net.server, commands[s], ADDRESSES[s])).pid
                for s in COST_SERVERS
            }
            for run in range(runs):
                turn = run % len(COST_SERVERS)
                order = COST_SERVERS[turn:] + COST_SERVERS[:turn]
                for case, action in COST_CASES.items():
                    for server in order:
                        cpu, clients = cpu_seconds(pids[server]), children_seconds()
                        started = time.monotonic()
                        size = action(net, ADDRESSES[server], root, work)
                        wall = time.monotonic() - started
                        cpu = cpu_seconds(pids[server]) - cpu
                        clients = children_seconds() - clients
                        samples[server][case].append(
                            (
                                size / MIB / wall,
                                cpu * 1000 / (size / MIB),
                                clients * 1000 / (size / MIB),
                            )
                        )
                loads.append(os.getloadavg()[0])
                print(f"round {run + 1} done, load {loads[-1]:.2f}", file=sys.stderr)
    print(f"not pinned; {runs} interleaved rounds; 1-minute load {min(loads):.2f}-{max(loads):.2f}")
    print("dnsmasq grants no windowsize: its windowsize rows are lock-step at 1468 (atftp).")
    cost_report(samples)
    return 0


def cost_report(samples: dict[str, dict[str, list[tuple[float, float, float]]]]) -> None:
    metrics = (("mib_s", 0, "MiB/s"), ("cpu_ms_per_mib", 1, "server CPU ms/MiB"))
    ratio_heads = "".join(f" {s}/dnsmasq (range) |" for s in OURS)
    print(f"| case | metric | {' | '.join(COST_SERVERS)} |{ratio_heads} clients' CPU ms/MiB "
          "(racker, dnsmasq) |")  # fmt: skip
    print("|---" * (3 + 2 * len(OURS) + 1) + "|")
    lines = []
    for case in COST_CASES:
        peer = samples["dnsmasq"][case]
        for name, i, unit in metrics:
            cells, ratios = [], []
            for server in COST_SERVERS:
                cells.append(f"{statistics.median(v[i] for v in samples[server][case]):.2f}")
            for server in OURS:
                own = samples[server][case]
                per_round = [
                    a[i] / b[i] if b[i] else float("inf") for a, b in zip(own, peer, strict=True)
                ]
                med = statistics.median(per_round)
                spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
                ratios.append(f"{med:.2f}x ({spread})")
                tag = "" if server == "racker" else f"[{server.removeprefix('racker-')}]"
                lines.append(
                    f"SUMMARY tftp.{case}.{name}{tag} {server}="
                    f"{statistics.median(v[i] for v in own):.2f} "
                    f"dnsmasq={statistics.median(v[i] for v in peer):.2f} ratio={med:.2f} "
                    f"spread={spread}"
                )
            clients = [
                statistics.median(v[2] for v in samples[s][case]) for s in ("racker", "dnsmasq")
            ]
            print(f"| {case} | {unit} | {' | '.join(cells)} | {' | '.join(ratios)} "
                  f"| {clients[0]:.1f}, {clients[1]:.1f} |")  # fmt: skip
    print("\nRatios are per round (servers measured seconds apart), racker over dnsmasq:")
    print("above 1 is better for MiB/s, below 1 is better for CPU ms/MiB.")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
