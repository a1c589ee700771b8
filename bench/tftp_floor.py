"""What a lock-step TFTP transfer costs racker's event loop: racker vs a Python server without one.

    .venv/bin/python bench/tftp_floor.py [--pairs 15] [--mib 10] [--client test|curl]

A measuring stick, not a product: ``FLOOR`` below is the least a Python TFTP server can do per
block (one blocking ``recv``, one ``send``; one transfer at a time, no timeouts, no checks).
racker (``TftpServer`` under asyncio), that floor and dnsmasq serve one file of random bytes
from their own addresses in one namespace; the client (the tests' client at blksize 1468,
windowsize 1, or curl at 1468) fetches it from each in turn, ``--pairs`` times, the order
rotating. Printed: each server's median and the per-round ratios to dnsmasq. The difference
between racker and the floor is what asyncio's wake-up path (epoll_wait, the loop's callback
machinery, a non-blocking recv) adds to every block; dnsmasq pays its own poll loop.
Needs root; creates and removes its own namespaces (tests/support/netns.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "src")]

from tests.support.netns import link  # noqa: E402
from tftp import ADDRESSES as TFTP_ADDRESSES  # noqa: E402
from tftp import REPO, pinned, running, server_commands  # noqa: E402

# racker and dnsmasq where bench/tftp.py runs them; the floor on an address of its own.
ADDRESSES = {
    "racker": TFTP_ADDRESSES["racker"],
    "floor": "10.99.0.6",
    "dnsmasq": TFTP_ADDRESSES["dnsmasq"],
}
CLIENT_IP = "10.99.0.2"

FLOOR = r"""
import os, socket, sys
ip, root = sys.argv[1], sys.argv[2]
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((ip, 69))
while True:
    request, peer = listener.recvfrom(2048)
    fields = request[2:].split(b"\0")
    options = dict(zip(fields[2::2], fields[3::2]))
    size = int(options.get(b"blksize", b"512"))
    with open(os.path.join(root, fields[0].decode()), "rb") as f:
        content = f.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.connect(peer)
    if b"blksize" in options:
        sock.send(b"\0\6blksize\0" + str(size).encode() + b"\0")
        sock.recv(100)
    last = len(content) // size + 1
    for n in range(1, last + 1):
        sock.send(b"\0\3" + (n & 0xFFFF).to_bytes(2, "big") + content[(n - 1) * size : n * size])
        sock.recv(100)
    sock.close()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--mib", type=int, default=10)
    parser.add_argument("--client", choices=("test", "curl"), default="test")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-floor-") as tmp,
        link(ADDRESSES["racker"], 24, CLIENT_IP) as net,
    ):
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        os.chmod(tmp, 0o755)  # noqa: S103 - dnsmasq reads the file below
        original = os.urandom(args.mib << 20)
        (root / "f.bin").write_bytes(original)
        for ip in (ADDRESSES["floor"], ADDRESSES["dnsmasq"]):
            net.server.run("ip", "addr", "add", f"{ip}/24", "dev", net.srv_if)
        theirs = server_commands(root, work)  # bench/tftp.py's racker and dnsmasq
        commands = {
            "racker": theirs["racker"],
            "floor": [sys.executable, "-c", FLOOR, ADDRESSES["floor"], str(root)],
            "dnsmasq": theirs["dnsmasq"],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        out = work / "out.bin"
        with contextlib.ExitStack() as stack:
            for name, command in commands.items():
                stack.enter_context(running(net.server, command, ADDRESSES[name]))
            names = list(commands)
            for i in range(args.pairs):
                for name in names[i % 3 :] + names[: i % 3]:
                    ip = ADDRESSES[name]
                    if args.client == "test":
                        client = ["env", f"PYTHONPATH={REPO}:{REPO / 'src'}", sys.executable,
                                  "-m", "tests.integration.tftp.client", ip, "f.bin", str(out),
                                  "--blksize", "1468", "--windowsize", "1"]  # fmt: skip
                        result = net.client.run(*pinned("1", client), timeout=300)
                        took = float(json.loads(result.stdout)["seconds"])
                    else:
                        curl = ["curl", "-sS", "--tftp-blksize", "1468", "-o", str(out),
                                f"tftp://{ip}/f.bin"]  # fmt: skip
                        started = time.monotonic()
                        net.client.run(*pinned("1", curl), timeout=300)
                        took = time.monotonic() - started
                    if out.read_bytes() != original:
                        raise RuntimeError(f"{name}: the download differs from the file")
                    seconds[name].append(took)
    print(f"{args.mib} MiB, blksize 1468, lock-step, {args.client} client, {args.pairs} rounds")
    print("| server | median | per-round ratio to dnsmasq, median (range) |")
    print("|---|---|---|")
    for name, values in seconds.items():
        ratios = [d / s for d, s in zip(seconds["dnsmasq"], values, strict=True)]
        spread = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {name} | {statistics.median(values):.3f} s | {spread} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
