"""``racker factory check --probe``'s pure parts: the DISCOVER scapy crafts (read back by
racker's own codec), answers to it (crafted by scapy) parsed and racker marked, the report line.
The probe on a real link, against dnsmasq: tests/integration/serve/test_rogue_dhcp.py."""

from __future__ import annotations

import secrets
import socket

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from racker.dhcp import probe
from racker.dhcp.codec import decode
from racker.dhcp.frames import parse_frame
from racker.dhcp.options import MessageType, Opt
from racker.dhcp.probe import ProbeResult, discover_frame, parse_answer, probe_check, random_laa_mac
from tests.unit.dhcp.test_rogue import ROGUE_MAC


def test_the_probe_s_discover_is_a_pxe_client_s_from_a_local_random_mac() -> None:
    mac = random_laa_mac()
    assert mac[0] & 0x02 and not mac[0] & 0x01  # locally administered, unicast
    assert random_laa_mac() != mac
    frame = discover_frame(mac, 0xCAFE)
    parsed = parse_frame(frame)
    assert parsed is not None
    src_mac, _src_ip, sport, payload = parsed
    assert (src_mac, sport, frame[:6]) == (mac, 68, b"\xff" * 6)
    msg = decode(payload)  # racker's own codec reads scapy's DISCOVER
    assert (msg.op, msg.xid, msg.chaddr, msg.flags) == (1, 0xCAFE, mac, 0x8000)
    assert msg.options[Opt.MESSAGE_TYPE] == bytes([MessageType.DISCOVER])
    assert msg.options[Opt.VENDOR_CLASS].startswith(b"PXEClient:Arch:00000")
    assert msg.options[Opt.CLIENT_ARCH] == b"\0\0"


def answer(mac: bytes, xid: int, server: str, server_mac: str, kind: str = "offer") -> bytes:
    return bytes(
        Ether(src=server_mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src=server, dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, xid=xid, yiaddr="10.99.0.200", chaddr=mac + bytes(10))
        / DHCP(options=[("message-type", kind), ("server_id", server), "end"])
    )


def test_the_probe_names_answers_to_it_and_marks_racker() -> None:
    mac, xid = bytes.fromhex("0a0000000001"), 77
    racker = ({"10.99.0.1"}, {"52:54:00:99:02:01"})
    own = parse_answer(answer(mac, xid, "10.99.0.1", "52:54:00:99:02:01"), mac, xid, *racker)
    assert own is not None and own.racker and own.offered == "10.99.0.200"
    rogue = parse_answer(answer(mac, xid, "10.99.0.2", ROGUE_MAC, "nak"), mac, xid, *racker)
    assert rogue is not None and not rogue.racker and rogue.message_type == "NAK"
    # Racker's MAC alone (its address in another subnet) is racker too.
    mac_only = parse_answer(answer(mac, xid, "10.1.0.1", "52:54:00:99:02:01"), mac, xid, *racker)
    assert mac_only is not None and mac_only.racker
    # racker's address claimed from another MAC: not racker, a rogue (racker is its MAC).
    claimed = parse_answer(answer(mac, xid, "10.99.0.1", ROGUE_MAC), mac, xid, *racker)
    assert claimed is not None and not claimed.racker
    # No MAC of racker's known: its address is all there is to go by.
    by_ip = parse_answer(answer(mac, xid, "10.99.0.1", ROGUE_MAC), mac, xid, {"10.99.0.1"}, ())
    assert by_ip is not None and by_ip.racker
    # Someone else's exchange: another xid or client MAC.
    assert parse_answer(answer(mac, xid + 1, "10.99.0.2", ROGUE_MAC), mac, xid, *racker) is None
    other = bytes.fromhex("0a0000000002")
    assert parse_answer(answer(other, xid, "10.99.0.2", ROGUE_MAC), mac, xid, *racker) is None

    result = ProbeResult("pxe0", mac.hex(":"), xid, 4.0, [own, rogue])
    check = probe_check(result)
    assert not check.ok
    assert "1 DHCP server(s) other than racker answered" in check.title
    assert check.problems[0].message == f"another DHCP server answers: 10.99.0.2 (MAC {ROGUE_MAC})"
    assert check.details == (
        "10.99.0.1 (52:54:00:99:02:01): OFFER of 10.99.0.200 — racker",
        f"10.99.0.2 ({ROGUE_MAC}): NAK of 10.99.0.200 — NOT racker",
    )
    assert probe_check(ProbeResult("pxe0", "", 1, 4.0, [own])).ok
    assert result.to_dict()["rogue"] is True


def test_a_flood_of_forged_servers_is_listed_up_to_a_bound_and_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Anyone on the link sees the broadcast DISCOVER and may answer it from as many forged
    # servers as it likes: the probe lists MAX_ANSWERS of them and counts the rest, keeping
    # nothing per further server. (The link is a pair of UDP sockets on localhost here.)
    mac, xid = bytes.fromhex("0a0000000001"), 0x01020304
    monkeypatch.setattr(probe, "random_laa_mac", lambda: mac)
    monkeypatch.setattr(secrets, "token_bytes", lambda n: xid.to_bytes(n, "big"))
    link, peer = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    link.bind(("127.0.0.1", 0))
    peer.bind(("127.0.0.1", 0))
    link.connect(peer.getsockname())
    peer.connect(link.getsockname())
    monkeypatch.setattr(probe, "_probe_socket", lambda _interface: link)
    forged = probe.MAX_ANSWERS + 30
    try:
        for i in range(forged):
            peer.send(
                answer(
                    mac,
                    xid,
                    f"10.98.{i // 250}.{i % 250 + 1}",
                    f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                )
            )
        result = probe.probe_dhcp_servers("pxe0", 0.3, {"10.99.0.1"}, {"52:54:00:99:02:01"})
    finally:
        peer.close()
        link.close()
    assert len(result.answers) == probe.MAX_ANSWERS
    assert result.unlisted == forged - probe.MAX_ANSWERS
    check = probe_check(result)
    assert not check.ok
    assert check.title.endswith(
        f"; {forged - probe.MAX_ANSWERS} more answers from servers not listed"
    )
