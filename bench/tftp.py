"""TFTP benchmark: racker vs dnsmasq vs tftpd-hpa on one veth link, in one run.

    .venv/bin/python bench/tftp.py [--runs 3] [--quick]

Sets up two throwaway network namespaces (tests/support/netns.py), writes a 50 MiB and a 1 MiB
file of random bytes to a temporary directory, and for each server in turn (each alone on port 69
of the server namespace): downloads the 50 MiB file with curl at blksize 512 and 1468, and 20
parallel 1 MiB downloads with curl. Then the windowed client of the tests
(tests/integration/tftp/client.py) and atftp 0.8 (a packaged client that sends windowsize)
fetch the 50 MiB file from every server with windowsize 1, 8 and 16 (dnsmasq and tftpd-hpa do not
grant windowsize, so they stay lock-step). Each figure is the median of ``--runs`` runs.
Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
MIB = 1024 * 1024

RACKER = """
import asyncio, logging
from pathlib import Path
from racker.config import TftpConfig
from racker.events import discard
from racker.tftp.server import TftpServer
logging.basicConfig(level=logging.ERROR)
async def main():
    server = TftpServer({ip!r}, [Path({root!r})], TftpConfig(), 1500, discard)
    await server.start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def server_commands(root: Path, state: Path) -> dict[str, list[str]]:
    return {
        "racker": [sys.executable, "-c", RACKER.format(ip=SERVER_IP, root=str(root))],
        "dnsmasq": [
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
            f"--tftp-root={root}", f"--listen-address={SERVER_IP}", "--bind-interfaces",
            "--user=root", f"--pid-file={state / 'dnsmasq.pid'}", "--log-facility=-",
        ],
        "tftpd-hpa": [
            "in.tftpd", "-L", "-u", "root", "--address", f"{SERVER_IP}:69", "-s", str(root),
        ],
    }  # fmt: skip


@contextlib.contextmanager
def running(ns: Namespace, command: list[str]) -> Iterator[None]:
    proc = ns.popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until port 69 is bound
            if ":69 " in ns.run("ss", "-uln").stdout:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{command[0]} did not bind port 69")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(action: Callable[[], float | None], runs: int) -> float:
    """Median seconds of ``runs`` runs; an action may return its own measurement."""
    samples = []
    for _ in range(runs):
        started = time.monotonic()
        own = action()
        samples.append(own if own is not None else time.monotonic() - started)
    return statistics.median(samples)


def curl(net: Link, name: str, blksize: int, out: Path) -> list[str]:
    return [
        "curl",
        "-sS",
        "--tftp-blksize",
        str(blksize),
        "-o",
        str(out),
        f"tftp://{SERVER_IP}/{name}",
    ]


def check(out: Path, original: Path) -> None:
    if out.stat().st_size != original.stat().st_size or out.read_bytes() != original.read_bytes():
        raise RuntimeError(f"{out} differs from {original}")


def single(net: Link, root: Path, work: Path, name: str, blksize: int) -> Callable[[], None]:
    def action() -> None:
        out = work / "single.out"
        net.client.run(*curl(net, name, blksize, out), timeout=300)
        check(out, root / name)

    return action


def parallel(net: Link, root: Path, work: Path, count: int, blksize: int) -> Callable[[], None]:
    def action() -> None:
        procs = [
            net.client.popen(curl(net, "1m.bin", blksize, work / f"p{i}.out")) for i in range(count)
        ]
        if any(p.wait(300) != 0 for p in procs):
            raise RuntimeError("a parallel download failed")
        for i in range(count):
            check(work / f"p{i}.out", root / "1m.bin")

    return action


def windowed(net: Link, root: Path, work: Path, windowsize: int) -> Callable[[], float]:
    def action() -> float:
        out = work / "w.out"
        args = ["env", f"PYTHONPATH={REPO}:{REPO / 'src'}", sys.executable, "-m",
                "tests.integration.tftp.client", SERVER_IP, "50m.bin", str(out),
                "--blksize", "1468", "--windowsize", str(windowsize)]  # fmt: skip
        result = json.loads(net.client.run(*args, timeout=300).stdout)
        check(out, root / "50m.bin")
        return float(result["seconds"])  # the transfer itself, without interpreter start-up

    return action


def atftp_windowed(net: Link, root: Path, work: Path, windowsize: int) -> Callable[[], None]:
    def action() -> None:
        out = work / "a.out"
        net.client.run(
            "atftp", "--option", "blksize 1468", "--option", f"windowsize {windowsize}",
            "-g", "-r", "50m.bin", "-l", str(out), SERVER_IP, timeout=300,
        )  # fmt: skip
        check(out, root / "50m.bin")

    return action


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
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("dnsmasq", "in.tftpd", "curl")):
        print("needs root, dnsmasq, in.tftpd (tftpd-hpa) and curl", file=sys.stderr)
        return 2
    servers = ["racker", "dnsmasq", "tftpd-hpa"]
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
        for server in servers:
            with running(net.server, commands[server]):
                row = rows[server]
                for blksize in (512, 1468):
                    row[f"50 MiB curl {blksize}"] = timed(
                        single(net, root, work, "50m.bin", blksize), args.runs
                    )
                for blksize in (512, 1468):
                    row[f"20x1 MiB curl {blksize}"] = timed(
                        parallel(net, root, work, 20, blksize), args.runs
                    )
                for ws in (1, 8, 16):
                    row[f"50 MiB windowsize {ws}"] = timed(windowed(net, root, work, ws), args.runs)
                for ws in (1, 8, 16):
                    row[f"50 MiB atftp windowsize {ws}"] = timed(
                        atftp_windowed(net, root, work, ws), args.runs
                    )
            print(f"{server}: {json.dumps(row)}", file=sys.stderr)
    ours, theirs = codec_speed()
    report(rows, ours, theirs, args.runs)
    return 0


def report(rows: dict[str, dict[str, float]], ours: float, theirs: float, runs: int) -> None:
    cases = list(rows["racker"])
    head = f"| case (median of {runs}; seconds, MiB/s) | racker | dnsmasq | tftpd-hpa |"
    print(head + " racker vs dnsmasq |")
    print("|---|---|---|---|---|")
    for case in cases:
        size = 50 if case.startswith("50") else 20
        cells = [f"{rows[s][case]:.2f} s ({size / rows[s][case]:.1f})" for s in rows]
        ratio = rows["dnsmasq"][case] / rows["racker"][case]
        print(f"| {case} | {' | '.join(cells)} | {ratio:.2f}x |")
    # Every 50 MiB transfer at 1468 that ran lock-step: all of dnsmasq's and tftpd-hpa's (they
    # grant no window), and racker's with curl or windowsize 1.
    lockstep = min(
        seconds
        for server, row in rows.items()
        for case, seconds in row.items()
        if case.startswith("50 MiB")
        and "512" not in case
        and (server != "racker" or "windowsize" not in case or case.endswith("windowsize 1"))
    )
    print()
    for client in ("", "atftp "):
        w16 = rows["racker"][f"50 MiB {client}windowsize 16"]
        print(
            f"racker {client}windowsize 16 vs the best lock-step 50 MiB transfer "
            f"({lockstep:.2f} s): {lockstep / w16:.2f}x"
        )
    print(f"codec, decode ACK + encode DATA: racker {ours:.2f} us, tftpy {theirs:.2f} us")


if __name__ == "__main__":
    sys.exit(main())
