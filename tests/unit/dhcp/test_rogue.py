"""Rogue DHCP servers: the reply filter equals tcpdump's, replies crafted by scapy (the oracle)
parse to the server they name, and the tracker warns once a minute per server within bounds."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from racker.dhcp.rogue import (
    BPF_SERVER_REPLIES,
    Decision,
    FrameBudget,
    RogueTracker,
    ServerReply,
    parse_reply,
)
from racker.errors import PacketError

ROGUE_MAC = "02:00:00:00:be:ef"
CLIENT_MAC = "52:54:00:99:00:10"


def reply(
    message_type: str | None = "offer",
    *,
    server_id: str | None = "192.168.1.1",
    src: str = "192.168.1.1",
    yiaddr: str = "192.168.1.50",
    sport: int = 67,
    dport: int = 68,
    op: int = 2,
) -> bytes:
    options: list[object] = []
    if message_type is not None:
        options.append(("message-type", message_type))
    if server_id is not None:
        options.append(("server_id", server_id))
    options.append("end")
    packet = (
        Ether(src=ROGUE_MAC, dst="ff:ff:ff:ff:ff:ff")
        / IP(src=src, dst="255.255.255.255")
        / UDP(sport=sport, dport=dport)
        / BOOTP(op=op, xid=0x1234, yiaddr=yiaddr, chaddr=bytes.fromhex("525400990010") + bytes(10))
    )
    if message_type is not None or server_id is not None:
        packet = packet / DHCP(options=options)
    return bytes(packet)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_the_reply_filter_is_what_tcpdump_compiles() -> None:
    out = subprocess.run(
        ["tcpdump", "-dd", "ip and udp src port 67 and udp dst port 68"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    compiled = tuple(
        tuple(int(v, 0) for v in m) for m in re.findall(r"\{ (\S+), (\d+), (\d+), (\S+) \}", out)
    )
    assert compiled == BPF_SERVER_REPLIES


@pytest.mark.parametrize(
    ("message_type", "expected"), [("offer", "OFFER"), ("ack", "ACK"), ("nak", "NAK")]
)
def test_a_server_s_answers_name_it(message_type: str, expected: str) -> None:
    assert parse_reply(reply(message_type)) == ServerReply(
        "192.168.1.1", ROGUE_MAC, expected, "192.168.1.50", CLIENT_MAC
    )


def test_option_54_names_the_server_over_the_ip_source() -> None:
    # A server answering from one address on behalf of another (option 54 is what the client
    # will talk to), and a BOOTP server without options, named by its IP source.
    found = parse_reply(reply(server_id="10.0.0.7", src="10.0.0.8"))
    assert found is not None and found.server_ip == "10.0.0.7"
    # BOOTP (RFC 951): no magic cookie, no options (scapy sends the 236-byte header).
    bootp = parse_reply(reply(None, server_id=None, src="10.0.0.9"))
    assert bootp == ServerReply("10.0.0.9", ROGUE_MAC, "BOOTP", "192.168.1.50", CLIENT_MAC)
    # BOOTP with RFC 1497 vendor extensions (a cookie, no option 53).
    vendor = parse_reply(reply(None, server_id="10.0.0.10", src="10.0.0.9"))
    assert vendor is not None and (vendor.server_ip, vendor.message_type) == ("10.0.0.10", "BOOTP")


def test_an_address_less_answer_has_no_offered_address() -> None:
    found = parse_reply(reply("nak", yiaddr="0.0.0.0"))
    assert found is not None and found.offered is None


@pytest.mark.parametrize(
    "frame",
    [
        reply("discover", op=1),  # a client's request
        reply("request", op=2),  # a BOOTREPLY op with a request's type: not an answer
        reply("inform"),
        reply(sport=68, dport=67),  # client to server
        reply(sport=67, dport=67),  # relay agent to server
        b"",
        bytes(60),
    ],
)
def test_what_is_not_a_server_s_answer_is_none(frame: bytes) -> None:
    assert parse_reply(frame) is None


def test_malformed_replies_raise_packet_error() -> None:
    frame = reply()
    with pytest.raises(PacketError):
        parse_reply(frame[: 14 + 20 + 8 + 100])  # cut inside the BOOTP header
    bad_id = (
        Ether(src=ROGUE_MAC)
        / IP(src="10.0.0.1")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2)
        / DHCP(options=[("message-type", "offer"), (54, b"\x0a\x00"), "end"])
    )
    with pytest.raises(PacketError, match="option 54"):
        parse_reply(bytes(bad_id))


def test_a_server_is_warned_about_once_a_minute() -> None:
    tracker = RogueTracker()
    seen = [tracker.observe("10.0.0.2", ROGUE_MAC, "OFFER", t) for t in (0, 1, 59.9, 60, 61)]
    assert seen == [
        Decision.WARN,
        Decision.COUNT,
        Decision.COUNT,
        Decision.WARN,
        Decision.COUNT,
    ]
    server = tracker.get("10.0.0.2", ROGUE_MAC)
    assert server is not None and server.replies == 5 and server.first_seen == 0
    assert tracker.replies == 5
    # Another server (another IP, or the same IP from another MAC) is its own.
    assert tracker.observe("10.0.0.3", ROGUE_MAC, "ACK", 61) is Decision.WARN
    assert tracker.observe("10.0.0.2", "02:00:00:00:00:01", "ACK", 61) is Decision.WARN


def test_at_most_max_servers_are_kept_least_recently_seen_first_out() -> None:
    tracker = RogueTracker(max_servers=3, max_warnings=1000)
    for i in range(3):
        tracker.observe(f"10.0.0.{i}", ROGUE_MAC, "OFFER", i)
    tracker.observe("10.0.0.0", ROGUE_MAC, "OFFER", 3)  # seen again: now the newest
    tracker.observe("10.0.0.9", ROGUE_MAC, "OFFER", 4)  # a fourth: 10.0.0.1 goes
    assert [s.server_ip for s in tracker.active(4)] == ["10.0.0.2", "10.0.0.0", "10.0.0.9"]
    assert tracker.evicted == 1
    for i in range(1000):  # a flood of forged servers keeps three
        tracker.observe(f"10.1.{i // 256}.{i % 256}", ROGUE_MAC, "OFFER", 5)
    assert len(tracker.active(5)) == 3
    assert tracker.evicted == 1001
    assert tracker.replies == 1005


def test_warnings_a_minute_are_bounded_in_all_and_held_ones_come_later() -> None:
    tracker = RogueTracker(max_warnings=2)
    decisions = [tracker.observe(f"10.0.0.{i}", ROGUE_MAC, "OFFER", 10) for i in range(5)]
    assert decisions == [Decision.WARN] * 2 + [Decision.HELD] * 3
    assert tracker.held == 3
    # A server held back is not marked as warned: it is told in the next minute.
    assert tracker.observe("10.0.0.4", ROGUE_MAC, "OFFER", 30) is Decision.HELD
    assert tracker.observe("10.0.0.4", ROGUE_MAC, "OFFER", 70) is Decision.WARN
    assert tracker.observe("10.0.0.0", ROGUE_MAC, "OFFER", 70) is Decision.WARN
    assert tracker.observe("10.0.0.1", ROGUE_MAC, "OFFER", 70) is Decision.HELD


def test_active_counts_the_servers_seen_within_the_window() -> None:
    tracker = RogueTracker(window=3600)
    tracker.observe("10.0.0.1", ROGUE_MAC, "OFFER", 0)
    tracker.observe("10.0.0.2", ROGUE_MAC, "OFFER", 1000)
    assert len(tracker.active(3600)) == 2
    assert [s.server_ip for s in tracker.active(3601)] == ["10.0.0.2"]
    assert tracker.active(10_000) == []


def test_the_frame_budget_parses_at_most_n_a_second() -> None:
    budget = FrameBudget(per_second=3)
    allowed = [budget.allow(100.0 + i * 0.1) for i in range(10)]  # 10 frames in one second
    assert allowed == [True] * 3 + [False] * 7
    assert budget.skipped == 7
    assert budget.allow(101.0)  # a new second
