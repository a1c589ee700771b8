"""What a lock-step TFTP transfer costs racker's event loop: racker vs Python servers without it.

    .venv/bin/python bench/tftp_floor.py [--pairs 15] [--mib 10] [--client test|curl]
                                         [--parallel N]

Measuring sticks, not products. ``FLOOR`` is the least a Python TFTP server can do per block
(one blocking ``recv``, one ``send``; one transfer at a time, no timeouts, no checks);
``ASYNCIO_FLOOR`` is the same least work under asyncio (``loop.add_reader`` on a connected
non-blocking socket: one wake-up, one ``recv``, one ``send`` per block), and "uvloop-floor" is
that under uvloop's loop. racker (``TftpServer`` under asyncio), the floors and dnsmasq serve
one file of random bytes from their own addresses in one namespace; the client (the tests'
client at blksize 1468, windowsize 1, or curl at 1468) fetches it from each in turn,
``--pairs`` times, the order rotating. With ``--parallel N``, N curl downloads at once per
server and round (the blocking floor is left out: it would serve them one after another).
Printed: each server's median and the per-round ratios to dnsmasq. floor vs asyncio-floor is
what asyncio's wake-up path (epoll_wait, the loop's callback machinery, a non-blocking recv)
adds to every block; asyncio-floor vs racker is what racker's own code adds.
Needs root; creates and removes its own namespaces (tests/support/netns.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
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
    "asyncio-floor": "10.99.0.7",
    "uvloop-floor": "10.99.0.8",
    "dnsmasq": TFTP_ADDRESSES["dnsmasq"],
}
CLIENT_IP = "10.99.0.2"

# What both floors do with a read request: the file's bytes, and a socket on a fresh port
# connected to the client (its TID); an OACK for blksize when asked.
OPEN = r"""
import os, socket, sys
ip, root = sys.argv[1], sys.argv[2]

def opened(request, peer):
    fields = request[2:].split(b"\0")
    options = dict(zip(fields[2::2], fields[3::2]))
    size = int(options.get(b"blksize", b"512"))
    with open(os.path.join(root, fields[0].decode()), "rb") as f:
        content = f.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.connect(peer)
    oack = b"blksize" in options
    if oack:
        sock.send(b"\0\6blksize\0" + str(size).encode() + b"\0")
    return sock, content, size, oack

def data(content, size, n):
    return b"\0\3" + (n & 0xFFFF).to_bytes(2, "big") + content[(n - 1) * size : n * size]
"""

FLOOR = (
    OPEN
    + r"""
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((ip, 69))
while True:
    sock, content, size, oack = opened(*listener.recvfrom(2048))
    if oack:
        sock.recv(100)
    for n in range(1, len(content) // size + 2):
        sock.send(data(content, size, n))
        sock.recv(100)
    sock.close()
"""
)

# The same least work per block under asyncio: a connected non-blocking socket per transfer,
# loop.add_reader, one recv and one send per wake-up. Whatever separates it from FLOOR is the
# event loop's own cost; whatever separates racker from it is racker's.
ASYNCIO_FLOOR = (
    OPEN
    + r"""
import asyncio
if sys.argv[3:] == ["uvloop"]:
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((ip, 69))
listener.setblocking(False)

def accept():
    sock, content, size, oack = opened(*listener.recvfrom(2048))
    sock.setblocking(False)
    last = len(content) // size + 1
    sent = [0]

    def readable():
        sock.recv(100)
        n = sent[0] + 1
        if n > last:
            loop.remove_reader(sock.fileno())
            sock.close()
            return
        sent[0] = n
        sock.send(data(content, size, n))

    if not oack:
        sent[0] = 1
        sock.send(data(content, size, 1))
    loop.add_reader(sock.fileno(), readable)

loop.add_reader(listener.fileno(), accept)
loop.run_forever()
"""
)


def curl(ip: str, out: Path) -> list[str]:
    return ["curl", "-sS", "--tftp-blksize", "1468", "-o", str(out), f"tftp://{ip}/f.bin"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--mib", type=int, default=10)
    parser.add_argument("--client", choices=("test", "curl"), default="test")
    parser.add_argument(
        "--parallel", type=int, default=1, help="N curl downloads at once (not the floor)"
    )
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
        for name in ADDRESSES.keys() - {"racker"}:  # racker's is the link's own
            ip = ADDRESSES[name]
            net.server.run("ip", "addr", "add", f"{ip}/24", "dev", net.srv_if)
        theirs = server_commands(root, work)  # bench/tftp.py's racker and dnsmasq
        commands = {
            "racker": theirs["racker"],
            "floor": [sys.executable, "-c", FLOOR, ADDRESSES["floor"], str(root)],
            "asyncio-floor": [
                sys.executable,
                "-c",
                ASYNCIO_FLOOR,
                ADDRESSES["asyncio-floor"],
                str(root),
            ],
            "uvloop-floor": [
                sys.executable,
                "-c",
                ASYNCIO_FLOOR,
                ADDRESSES["uvloop-floor"],
                str(root),
                "uvloop",
            ],
            "dnsmasq": theirs["dnsmasq"],
        }
        if args.parallel > 1:
            del commands["floor"]  # one transfer at a time: it would serve them in a queue
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        outs = [work / f"out{j}.bin" for j in range(args.parallel)]

        def fetch(ip: str) -> float:
            if args.parallel > 1:  # curl: 20 Python clients would spend the round starting up
                started = time.monotonic()
                clients = [
                    net.client.popen(pinned("1", curl(ip, out)), stderr=subprocess.PIPE)
                    for out in outs
                ]
                for client in clients:
                    if client.wait(timeout=300):
                        raise RuntimeError(f"curl failed: {client.communicate()[1]!r}")
                return time.monotonic() - started
            if args.client == "test":
                client = ["env", f"PYTHONPATH={REPO}:{REPO / 'src'}", sys.executable,
                          "-m", "tests.integration.tftp.client", ip, "f.bin", str(outs[0]),
                          "--blksize", "1468", "--windowsize", "1"]  # fmt: skip
                result = net.client.run(*pinned("1", client), timeout=300)
                return float(json.loads(result.stdout)["seconds"])
            started = time.monotonic()
            net.client.run(*pinned("1", curl(ip, outs[0])), timeout=300)
            return time.monotonic() - started

        with contextlib.ExitStack() as stack:
            for name, command in commands.items():
                stack.enter_context(running(net.server, command, ADDRESSES[name]))
            names = list(commands)
            for i in range(args.pairs):
                k = i % len(names)
                for name in names[k:] + names[:k]:
                    took = fetch(ADDRESSES[name])
                    for out in outs:
                        if out.read_bytes() != original:
                            raise RuntimeError(f"{name}: a download differs from the file")
                        out.unlink()
                    seconds[name].append(took)
    client = "curl" if args.parallel > 1 else args.client
    print(
        f"{args.parallel} x {args.mib} MiB, blksize 1468, lock-step, {client} client,"
        f" {args.pairs} rounds"
    )
    print("| server | median | per-round ratio to dnsmasq, median (range) |")
    print("|---|---|---|")
    for name, values in seconds.items():
        ratios = [d / s for d, s in zip(seconds["dnsmasq"], values, strict=True)]
        spread = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {name} | {statistics.median(values):.3f} s | {spread} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
