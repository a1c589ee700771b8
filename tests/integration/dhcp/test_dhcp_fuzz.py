"""Bad input against the running server: 10,000+ fuzzed, truncated and random packets while a
real client (udhcpc) gets its lease; the server drops them, logs them and keeps serving."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.packet import fuzz

from racker.dhcp.codec import decode
from racker.dhcp.frames import ETH_P_IP, build_frame
from tests.integration.dhcp.support import relay_exchange, running, stop, udhcpc
from tests.support.netns import Link, entered, link

pytestmark = [pytest.mark.root, pytest.mark.slow]

CLIENT_MAC = "52:54:00:aa:00:01"
SERVER_MAC = bytes.fromhex("525400aa00fe")
NODE_IP = "10.99.0.64"
COOKIE = b"\x63\x82\x53\x63"


def valid_request(rng: random.Random) -> bytes:
    mac = bytes(rng.randrange(256) for _ in range(6))
    return bytes(
        BOOTP(op=1, xid=rng.randrange(2**32), chaddr=mac + bytes(10))
        / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6]), "end"])
    )


def bad_payloads(count: int, seed: int = 7) -> Iterator[bytes]:
    """Random bytes, truncations, bad cookies, options running past the end, overload loops,
    byte flips of valid requests and scapy's fuzz() of BOOTP/DHCP, mixed."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test input, not cryptography)
    header = valid_request(rng)[:236]
    for i in range(count):
        kind = i % 8
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 600))
        elif kind == 1:
            yield valid_request(rng)[: rng.randrange(0, 240)]
        elif kind == 2:
            yield header + rng.randbytes(4) + b"\x35\x01\x01\xff"
        elif kind == 3:
            yield header + COOKIE + b"\x35\x01\x01" + bytes([rng.randrange(1, 255), 200]) + b"ab"
        elif kind == 4:
            loop = header[:108] + (b"\x34\x01\x03\xff" + bytes(124)) + header[236:]
            yield loop + COOKIE + b"\x35\x01\x01\x34\x01\x01\xff"
        elif kind == 5:
            data = bytearray(valid_request(rng))
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data)
        else:
            yield bytes(
                fuzz(BOOTP(op=1) / DHCP(options=[("message-type", rng.randrange(1, 9)), "end"]))
            )


def blast(net: Link, payloads: list[bytes], done: threading.Event) -> None:
    with entered(net.client.name):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        sock.bind((net.cli_if, ETH_P_IP))
        src_mac = bytes.fromhex("02feedfacade")
        for i, payload in enumerate(payloads):
            frame = build_frame(src_mac, SERVER_MAC, bytes(4), b"\xff" * 4, (68, 67), payload)
            sock.send(frame)
            if i % 200 == 199:
                done.wait(0.01)  # spread the flood over the client's exchange
    finally:
        sock.close()
        done.set()


def test_fuzzed_packets_are_dropped_while_a_client_gets_its_lease(tmp_path: Path) -> None:
    payloads = list(bad_payloads(10_400))
    with (
        link(client_mac=CLIENT_MAC) as net,
        running(net, tmp_path, reservations={CLIENT_MAC: NODE_IP}) as served,
    ):
        done = threading.Event()
        flood = threading.Thread(target=blast, args=(net, payloads, done))
        flood.start()
        try:
            during = udhcpc(net.client, net.cli_if, tmp_path, tries=5)
        finally:
            flood.join(timeout=120)
        assert during is not None, served.stderr()
        assert during["ip"] == NODE_IP
        after = udhcpc(net.client, net.cli_if, tmp_path)
        assert after is not None
        assert after["ip"] == NODE_IP
        assert served.alive()
        summary = stop(served)
        assert "dropped a malformed packet" in served.stderr()
        assert "not logged" in served.stderr()  # the log is rate-limited
        dropped = int(summary.rsplit("dropped=", 1)[1].split()[0])
        assert dropped > 1000, summary
        assert "Traceback" not in served.stderr()


def test_malformed_packets_from_a_relay_agent_are_dropped_and_its_clients_still_served(
    tmp_path: Path,
) -> None:
    """Relay agents' datagrams (from port 67) come in on the UDP socket, not the packet socket:
    the same bad input there is dropped and logged with the relay's address."""
    relays = [{"subnet": "10.98.0.0/20", "pool": "10.98.1.0-10.98.1.99"}]
    with link(client_mac=CLIENT_MAC) as net:
        net.client.run("ip", "addr", "add", "10.98.0.2/20", "dev", net.cli_if)
        net.client.run("ip", "route", "add", "10.99.0.0/24", "dev", net.cli_if)
        net.server.run("ip", "route", "add", "10.98.0.0/20", "dev", net.srv_if)
        with running(net, tmp_path, unknown_clients="pool", relays=relays) as served:
            with entered(net.client.name):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind(("10.98.0.2", 67))
                for payload in bad_payloads(2000, seed=7):
                    sock.sendto(payload, (net.server_ip, 67))
            finally:
                sock.close()
            _offer, ack = relay_exchange(net, "10.98.0.2", bytes.fromhex("0a0000000003"))
            assert decode(ack).options[53] == b"\x05"  # ACK
            assert served.alive()
            summary = stop(served)
        assert "dropped a malformed packet from relay agent 10.98.0.2" in served.stderr()
        dropped = int(summary.rsplit("dropped=", 1)[1].split()[0])
        assert dropped > 200, summary
        assert "Traceback" not in served.stderr()
