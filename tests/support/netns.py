"""Network namespaces for tests: made here, used here, removed here (even on failure).

A ``Link`` is two namespaces joined by a veth pair, like the management node's PXE interface
and one client on the rack's L2 segment. Nothing leaves the namespaces: the addresses are
private to them and the root namespace gets no interface or route.

``entered(ns)`` switches the *calling thread* into a namespace (Linux namespaces are per
thread), so a test can create sockets that live there and keep using them afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def unique(prefix: str = "rk") -> str:
    return f"{prefix}{os.getpid() % 10000}{secrets.token_hex(2)}"


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the body with this thread in namespace ``ns``, then switch back."""
    with open("/proc/self/ns/net", "rb") as old, open(f"/run/netns/{ns}", "rb") as new:
        if _libc.setns(new.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            yield
        finally:
            if _libc.setns(old.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")


@dataclass
class Namespace:
    name: str

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kwargs)  # type: ignore[call-overload,no-any-return]


@dataclass
class Link:
    """server namespace (``srv_if``, ``server_ip``) <-veth-> client namespace (``cli_if``)."""

    server: Namespace
    client: Namespace
    srv_if: str
    cli_if: str
    server_ip: str
    prefix: int
    client_mac: str = ""
    extra: list[str] = field(default_factory=list)


def create_namespace(name: str) -> Namespace:
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return Namespace(name)


def delete_namespace(name: str) -> None:
    sh("ip", "netns", "pids", name, check=False)
    pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    sh("ip", "netns", "delete", name, check=False)


@contextlib.contextmanager
def link(
    server_ip: str = "10.99.0.1",
    prefix: int = 24,
    client_ip: str | None = None,
    client_mac: str = "52:54:00:aa:00:01",
    server_mac: str = "52:54:00:aa:00:fe",
) -> Iterator[Link]:
    """Two fresh namespaces and a veth pair between them; removed on exit."""
    tag = unique()
    srv, cli = f"{tag}s", f"{tag}c"
    made: list[str] = []
    try:
        for name in (srv, cli):
            create_namespace(name)
            made.append(name)
        srv_if, cli_if = "pxe0", "eth0"
        sh("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        sh("ip", "link", "set", f"{tag}a", "netns", srv, "name", srv_if, "address", server_mac)
        sh("ip", "link", "set", f"{tag}b", "netns", cli, "name", cli_if, "address", client_mac)
        if server_ip:  # "": a PXE NIC that has no address yet
            sh("ip", "-n", srv, "addr", "add", f"{server_ip}/{prefix}", "dev", srv_if)
        if client_ip:
            sh("ip", "-n", cli, "addr", "add", f"{client_ip}/{prefix}", "dev", cli_if)
        sh("ip", "-n", srv, "link", "set", srv_if, "up")
        sh("ip", "-n", cli, "link", "set", cli_if, "up")
        yield Link(Namespace(srv), Namespace(cli), srv_if, cli_if, server_ip, prefix, client_mac)
    finally:
        for name in made:
            delete_namespace(name)


def can_use_netns() -> bool:
    return os.geteuid() == 0 and sh("ip", "netns", "list", check=False).returncode == 0
