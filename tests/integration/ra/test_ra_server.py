"""RouterAdvertiser on a veth link: a client's router solicitation gets one RA back at once."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from racker.ra.server import IPV6_RECVHOPLIMIT, RouterAdvertiser
from tests.support.netns import Link, Namespace, can_use_netns, entered, link

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not can_use_netns(), reason="needs root and network namespaces"),
]
SERVER_MAC = "52:54:00:aa:00:fe"
RS = bytes([133, 0, 0, 0, 0, 0, 0, 0])


def wait_link_local(ns: Namespace, ifname: str) -> None:
    """Duplicate address detection makes a new link-local address unusable for ~1 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = ns.run("ip", "-6", "addr", "show", "dev", ifname, "scope", "link").stdout
        if "inet6" in out and "tentative" not in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"{ifname} has no usable link-local address")


def client_socket(lk: Link, hops: int) -> socket.socket:
    with entered(lk.client.name):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, lk.cli_if.encode())
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    sock.setblocking(False)
    return sock


async def solicit(lk: Link, hops: int, wait: float) -> list[tuple[bytes, int | None]]:
    """Send one RS to all-routers; collect the RAs that arrive within ``wait`` seconds."""
    sock = client_socket(lk, hops)
    try:
        with entered(lk.client.name):
            index = socket.if_nametoindex(lk.cli_if)
        sock.sendto(RS, ("ff02::2", 0, 0, index))
        got: list[tuple[bytes, int | None]] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data, anc, _f, _peer = sock.recvmsg(1500, socket.CMSG_SPACE(4))
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            if data[:1] == bytes([134]):
                hop = next((struct.unpack("@i", v[:4])[0] for _l, _t, v in anc), None)
                got.append((data, hop))
        return got
    finally:
        sock.close()


async def test_answers_a_solicitation_with_one_advertisement() -> None:
    with link(server_mac=SERVER_MAC) as lk:
        wait_link_local(lk.server, lk.srv_if)
        wait_link_local(lk.client, lk.cli_if)
        ra = RouterAdvertiser(lk.srv_if, SERVER_MAC)
        with entered(lk.server.name):
            await ra.start()
        try:
            got = await solicit(lk, hops=255, wait=1.0)
        finally:
            await ra.close()
    assert len(got) == 1
    data, hop = got[0]
    assert hop == 255  # RFC 4861 section 6.1.2: hosts drop RAs with any other hop limit
    _type, code, _sum, _cur, flags, lifetime = struct.unpack("!BBHBBH", data[:8])
    assert (code, flags, lifetime) == (0, 0, 0)
    assert data[16:24] == bytes.fromhex("0101" + SERVER_MAC.replace(":", ""))
    assert ra.answered == 1


async def test_ignores_a_solicitation_that_was_routed() -> None:
    with link(server_mac=SERVER_MAC) as lk:
        wait_link_local(lk.server, lk.srv_if)
        wait_link_local(lk.client, lk.cli_if)
        ra = RouterAdvertiser(lk.srv_if, SERVER_MAC)
        with entered(lk.server.name):
            await ra.start()
        try:
            got = await solicit(lk, hops=64, wait=0.5)
        finally:
            await ra.close()
    assert got == []
    assert ra.answered == 0


async def test_a_socket_error_warns_and_the_boot_stack_still_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As on a kernel booted with ipv6.disable=1 (no AF_INET6 sockets): RAs only save iPXE its
    # wait, so racker serve must start anyway. A missing interface fails the same way.
    ra = RouterAdvertiser("nosuch0", SERVER_MAC)
    with caplog.at_level("WARNING", logger="racker.ra"):
        await ra.start()
    await ra.close()
    assert "iPXE will wait ~13 s" in caplog.text
    assert ra.answered == 0
