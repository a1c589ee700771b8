"""Benchmark: what the passive rogue-DHCP watcher costs (racker/dhcp/rogue*.py).

    .venv/bin/python bench/rogue.py parse [--rounds 7] [--frames 20000]
    .venv/bin/python bench/rogue.py flood [--rounds 5] [--rate 20000] [--seconds 4]
    .venv/bin/python bench/rogue.py tap [--rounds 7] [--datagrams 200000]

parse: µs to parse one rogue OFFER frame, racker's ``parse_reply`` (its own codec) against
scapy's ``Ether(frame)`` and reading options 53 and 54 (the oracle of the tests), in-process,
interleaved rounds.

flood: a sender in a client namespace broadcasts rogue OFFERs at --rate frames/s for --seconds;
in the server namespace either a ``RogueWatcher`` (in its own asyncio process, as racker serve
runs it: BPF filter, at most 200 frames parsed a second, the rest read and counted) or the
reference, ``tcpdump -w /dev/null`` with the same filter expression, listens. CPU µs per flood
frame of the listener (utime + stime from /proc/PID/stat over the flood), interleaved rounds.

tap: why the watcher's socket is bound to ETH_P_IP, not ETH_P_ALL: the server namespace sends
--datagrams UDP datagrams of 64 bytes to the client, and the sender's own CPU per datagram is
measured with no packet socket open, with the watcher's (ETH_P_IP + BPF), and with an
ETH_P_ALL socket with the same filter (the kernel clones each outgoing frame for such a tap
before the filter drops it). Interleaved rounds.

Each prints ``SUMMARY rogue.METRIC racker=... peer=... ratio=... spread=...`` lines (medians;
spread: min-max of the per-round ratios). Run under the shared lock:
``flock /tmp/racker-bench.lock .venv/bin/python bench/rogue.py flood``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.support.netns import Link, link  # noqa: E402

from racker.dhcp.frames import ETH_P_IP, bpf_program  # noqa: E402
from racker.dhcp.rogue import BPF_SERVER_REPLIES, parse_reply  # noqa: E402

PY = sys.executable
ETH_P_ALL = 0x0003
FILTER = "ip and udp src port 67 and udp dst port 68"


def offer_frame() -> bytes:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(
        Ether(src="02:00:00:00:be:ef", dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.99.0.2", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, xid=7, yiaddr="10.99.0.200", chaddr=bytes.fromhex("525400990010") + bytes(10))
        / DHCP(options=[("message-type", "offer"), ("server_id", "10.99.0.2"),
                        ("lease_time", 3600), ("subnet_mask", "255.255.255.0"), "end"])
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(metric: str, racker: list[float], peer: list[float], unit: str) -> None:
    # A listener that used less than a clock tick (10 ms) in a round reads as 0: the ratio of
    # such a round is left out (the medians still show it).
    ratios = [r / p for r, p in zip(racker, peer, strict=True) if p > 0] or [float("nan")]
    print(
        f"SUMMARY rogue.{metric} racker={statistics.median(racker):.3f}{unit}"
        f" peer={statistics.median(peer):.3f}{unit} ratio={statistics.median(ratios):.2f}"
        f" spread={min(ratios):.2f}-{max(ratios):.2f} rounds={len(ratios)}"
    )


# -- parse ---------------------------------------------------------------------------------


def bench_parse(rounds: int, frames: int) -> None:
    from scapy.layers.dhcp import DHCP
    from scapy.layers.l2 import Ether

    frame = offer_frame()

    def racker() -> None:
        parse_reply(frame)

    def scapy() -> None:
        options = dict(o for o in Ether(frame)[DHCP].options if isinstance(o, tuple))
        options.get("message-type"), options.get("server_id")

    results: dict[str, list[float]] = {"racker": [], "scapy": []}
    for round_ in range(rounds):
        order = [("racker", racker), ("scapy", scapy)]
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            count = frames if name == "racker" else frames // 20
            start = time.perf_counter()
            for _ in range(count):
                fn()
            results[name].append((time.perf_counter() - start) / count * 1e6)
    for name, values in results.items():
        print(f"{name}: µs/frame {[round(v, 2) for v in values]}")
    summary("parse_us_per_frame", results["racker"], results["scapy"], "us")


# -- flood -----------------------------------------------------------------------------------


def run_watcher(interface: str) -> None:
    """Child process: a RogueWatcher as racker serve runs it, until SIGTERM."""
    from racker.dhcp.rogue_watch import RogueWatcher

    async def main() -> None:
        watcher = RogueWatcher(interface, lambda _event: None)
        await watcher.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        print(f"replies={watcher.tracker.replies} skipped={watcher.budget.skipped}", flush=True)
        await watcher.close()

    asyncio.run(main())


def run_sender(interface: str, rate: int, seconds: float) -> None:
    """Child process: broadcast rogue OFFERs at ``rate`` frames/s, paced per millisecond."""
    frame = offer_frame()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((interface, ETH_P_IP))
    start, sent = time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            try:
                sock.send(frame)
            except BlockingIOError:  # pragma: no cover - the qdisc pushed back
                break
            sent += 1
        time.sleep(0.001)
    print(f"sent={sent}", flush=True)


@contextlib.contextmanager
def listener(net: Link, kind: str) -> Iterator[subprocess.Popen[bytes]]:
    if kind == "racker":
        args = [PY, __file__, "_watch", net.srv_if]
    else:
        args = ["tcpdump", "-i", net.srv_if, "-n", "-q", "-w", "/dev/null", FILTER]
    proc = net.server.popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if kind == "racker":
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
        else:
            assert proc.stderr is not None
            assert b"listening" in proc.stderr.readline()
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        if kind == "racker" and proc.stdout is not None:
            print(f"  watcher: {proc.stdout.read().decode().strip()}", flush=True)


def inner_pid(proc: subprocess.Popen[bytes]) -> int:
    # ``ip netns exec`` execs the command, so the pid is the command's own.
    return proc.pid


def bench_flood(rounds: int, rate: int, seconds: float) -> None:
    results: dict[str, list[float]] = {"racker": [], "tcpdump": []}
    with link(client_mac="52:54:00:99:00:10") as net:
        for round_ in range(rounds):
            order = ["racker", "tcpdump"] if round_ % 2 == 0 else ["tcpdump", "racker"]
            for kind in order:
                with listener(net, kind) as proc:
                    time.sleep(0.3)
                    before = cpu_seconds(inner_pid(proc))
                    out = net.client.run(
                        PY, __file__, "_send", net.cli_if, str(rate), str(seconds),
                        timeout=seconds + 30,
                    ).stdout  # fmt: skip
                    time.sleep(0.2)
                    used = cpu_seconds(inner_pid(proc)) - before
                sent = int(out.split("sent=")[1])
                results[kind].append(used / sent * 1e6)
                print(f"round {round_} {kind}: {sent} frames, {used:.2f} s CPU", flush=True)
    summary(f"flood_cpu_us_per_frame@{rate}", results["racker"], results["tcpdump"], "us")


# -- tap --------------------------------------------------------------------------------------


def hold_socket(interface: str, protocol: int) -> None:
    """Child process: a packet socket with the watcher's filter, held until SIGTERM."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
    program = ctypes.create_string_buffer(bpf_program(BPF_SERVER_REPLIES))
    fprog = struct.pack("HL", len(BPF_SERVER_REPLIES), ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, 26, fprog)
    sock.bind((interface, protocol))
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})


def send_datagrams(target: str, count: int) -> None:
    """Child process: ``count`` UDP datagrams; prints its own CPU µs per datagram."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = bytes(64)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(count):
        with contextlib.suppress(BlockingIOError):
            sock.sendto(payload, (target, 9))
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"us={used / count * 1e6:.4f}", flush=True)


def bench_tap(rounds: int, datagrams: int) -> None:
    modes: dict[str, int | None] = {"none": None, "eth_p_ip": ETH_P_IP, "eth_p_all": ETH_P_ALL}
    results: dict[str, list[float]] = {m: [] for m in modes}
    with link(client_ip="10.99.0.9") as net:
        net.server.run("ip", "neigh", "add", "10.99.0.9", "lladdr", "52:54:00:aa:00:01",
                       "dev", net.srv_if)  # fmt: skip
        for round_ in range(rounds):
            names = list(modes)
            names = names[round_ % 3 :] + names[: round_ % 3]
            for mode in names:
                protocol = modes[mode]
                holder = None
                if protocol is not None:
                    holder = net.server.popen(
                        [PY, __file__, "_hold", net.srv_if, str(protocol)], stdout=subprocess.PIPE
                    )
                    assert holder.stdout is not None
                    assert holder.stdout.readline().strip() == b"ready"
                try:
                    out = net.server.run(PY, __file__, "_udp", "10.99.0.9", str(datagrams)).stdout
                finally:
                    if holder is not None:
                        holder.send_signal(signal.SIGTERM)
                        holder.wait(10)
                results[mode].append(float(out.split("us=")[1]))
                print(f"round {round_} {mode}: {results[mode][-1]:.3f} µs/datagram", flush=True)
    summary("tap_sender_us_per_datagram.eth_p_ip_vs_none", results["eth_p_ip"],
            results["none"], "us")  # fmt: skip
    summary("tap_sender_us_per_datagram.eth_p_all_vs_none", results["eth_p_all"],
            results["none"], "us")  # fmt: skip


def main(argv: list[str]) -> None:
    if argv and argv[0].startswith("_"):  # child processes
        children: dict[str, Callable[..., None]] = {
            "_watch": run_watcher,
            "_send": lambda i, r, s: run_sender(i, int(r), float(s)),
            "_hold": lambda i, p: hold_socket(i, int(p)),
            "_udp": lambda t, c: send_datagrams(t, int(c)),
        }
        children[argv[0]](*argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["parse", "flood", "tap"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--datagrams", type=int, default=200000)
    args = parser.parse_args(argv)
    if args.mode == "parse":
        bench_parse(args.rounds, args.frames)
    elif args.mode == "flood":
        bench_flood(args.rounds, args.rate, args.seconds)
    else:
        bench_tap(args.rounds, args.datagrams)


if __name__ == "__main__":
    main(sys.argv[1:])
