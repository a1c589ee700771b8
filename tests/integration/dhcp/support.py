"""Running the DHCP runner in a namespace and real DHCP clients against it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP

from racker.dhcp.codec import decode
from tests.support.netns import Link, Namespace, entered

REPO = Path(__file__).resolve().parents[3]
PYTHON = str(REPO / ".venv" / "bin" / "python")

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
echo "ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid subnet=$subnet" \\
    > "$(dirname "$0")/udhcpc.out"
"""


@dataclass
class Served:
    link: Link
    workdir: Path
    spec: dict[str, Any]
    proc: subprocess.Popen[bytes]
    err: Any  # the child's stderr file, closed by stop()

    def events(self) -> list[dict[str, Any]]:
        path = self.workdir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def stderr(self) -> str:
        return (self.workdir / "server.err").read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def default_spec(link: Link, workdir: Path, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interface": link.srv_if,
        "server": link.server_ip,
        "subnet": str(ipaddress.IPv4Network(f"{link.server_ip}/{link.prefix}", strict=False)),
        "pool": "10.99.0.192-10.99.0.199",
        "gateway": "10.99.0.254",
        "reservations": {},
        "state_dir": str(workdir / "state"),
        "events": str(workdir / "events.jsonl"),
        "http_port": 8080,
    }
    spec.update(extra)
    return spec


def start(link: Link, workdir: Path, spec: dict[str, Any]) -> Served:
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    err = open(workdir / "server.err", "ab")  # noqa: SIM115 (handed to the child)
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'src'}"}
    proc = link.server.popen(
        [PYTHON, "-m", "tests.integration.dhcp.runner", str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=str(REPO),
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    served = Served(link, workdir, spec, proc, err)
    if line.strip() != "ready":
        proc.kill()
        stop(served)
        raise RuntimeError(f"DHCP runner did not start: {line!r}\n{served.stderr()}")
    return served


def stop(served: Served) -> str:
    """SIGTERM (a clean shutdown) and wait; the runner's last output line."""
    if served.proc.poll() is None:
        served.proc.terminate()
    try:
        out, _ = served.proc.communicate(timeout=20)
    finally:
        served.err.close()
    return out.decode()


@contextlib.contextmanager
def running(link: Link, workdir: Path, **extra: Any) -> Iterator[Served]:
    served = start(link, workdir, default_spec(link, workdir, **extra))
    try:
        yield served
    finally:
        stop(served)


def udhcpc(
    ns: Namespace, iface: str, workdir: Path, *extra: str, tries: int = 3
) -> dict[str, str] | None:
    """Run busybox udhcpc once; the bound lease's variables, or None without a lease."""
    script = workdir / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    out = workdir / "udhcpc.out"
    out.unlink(missing_ok=True)
    result = ns.run(
        "busybox", "udhcpc", "-i", iface, "-n", "-q", "-f", "-t", str(tries), "-T", "1",
        "-s", str(script), *extra, check=False, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 or not out.exists():
        return None
    return dict(item.split("=", 1) for item in out.read_text().split())


def relay_exchange(net: Link, giaddr: str, mac: bytes) -> list[bytes]:
    """DISCOVER + REQUEST as a relay agent would send them (source port 67, giaddr, hops 1)."""
    with entered(net.client.name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((giaddr, 67))
        sock.settimeout(3)
        replies = []
        discover = BOOTP(op=1, xid=0x51, hops=1, giaddr=giaddr, chaddr=mac + bytes(10)) / DHCP(
            options=[("message-type", "discover"), "end"]
        )
        sock.sendto(bytes(discover), (net.server_ip, 67))
        data, peer = sock.recvfrom(2048)
        assert peer == (net.server_ip, 67)
        replies.append(data)
        offered = decode(data).yiaddr
        request = BOOTP(op=1, xid=0x52, hops=1, giaddr=giaddr, chaddr=mac + bytes(10)) / DHCP(
            options=[
                ("message-type", "request"),
                ("server_id", net.server_ip),
                ("requested_addr", socket.inet_ntoa(offered)),
                "end",
            ]
        )
        sock.sendto(bytes(request), (net.server_ip, 67))
        replies.append(sock.recvfrom(2048)[0])
        return replies
    finally:
        sock.close()
